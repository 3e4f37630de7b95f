"""What every executor shares: VU creation, the iteration call, stop state.

The per-iteration path (:meth:`Runtime.iterate`) is on the hot path: it does a weighted
pick, one await, two appends and one counter update.
"""

from __future__ import annotations

import asyncio
import bisect
import random
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from time import perf_counter
from typing import Any

from cannonade.config import ArrivalRate, EngineOptions, Partition
from cannonade.engine.http import HttpClient, HttpShared
from cannonade.engine.vu import VU, Metrics, RetireVU
from cannonade.model.metrics import (
    INTERRUPTED_ITERATIONS,
    ITERATION_DURATION,
    ITERATION_ERRORS,
    ITERATIONS,
    Key,
)
from cannonade.model.recorder import Recorder, Samples
from cannonade.scenarios.loader import LoadedScenario

MAX_ERROR_GROUPS = 1000  # beyond this, messages are lumped: unbounded cardinality is a leak
MAX_MESSAGE = 500


class _Pick:
    """One scenario function with its pre-built metric handles."""

    __slots__ = ("count", "duration", "errors", "fn", "interrupted", "iterations", "name")

    def __init__(self, name: str, fn: Callable[[VU], Awaitable[Any]], recorder: Recorder) -> None:
        self.name = name
        self.fn = fn
        self.duration: Samples = recorder.samples(Key(ITERATION_DURATION, name))
        self.iterations = Key(ITERATIONS, name)
        self.errors = Key(ITERATION_ERRORS, name)
        self.interrupted = Key(INTERRUPTED_ITERATIONS, name)
        self.count = 0  # iterations since the last flush: an int add beats a dict update


class Runtime:
    def __init__(
        self,
        scenario: LoadedScenario,
        options: EngineOptions,
        partition: Partition,
        recorder: Recorder,
        rng: random.Random,
        setup_data: Any = None,
    ) -> None:
        self.scenario = scenario
        self.options = options
        self.partition = partition
        self.recorder = recorder
        self.rng = rng
        self.setup_data = setup_data
        self.http_shared = HttpShared(
            recorder,
            base_url=options.http.base_url,
            headers=dict(options.http.headers),
            connect_timeout=options.http.connect_timeout,
            timeout=options.http.timeout,
            follow_redirects=options.http.follow_redirects,
            verify_tls=options.http.verify_tls,
            open_model=_is_open(options),
        )
        self.metrics = Metrics(recorder)
        self.picks = [_Pick(s.name, s.fn, recorder) for s in scenario.scenarios]
        total = 0.0
        self._cum: list[float] = []
        for s in scenario.scenarios:
            total += s.weight
            self._cum.append(total)
        self._total_weight = total
        self._single = self.picks[0] if len(self.picks) == 1 else None
        self._error_groups: set[tuple[str, str]] = set()
        self.vus: dict[int, VU] = {}
        self.active = 0  # VUs currently running iterations
        self.peak = 0  # most VUs active at once since the last flush (the `vus` gauge)
        self.allocated = 0  # VUs created and set up (the `vus_max` gauge)
        self.stopping = False  # a stop was asked for: start nothing new
        self.killed = False  # a hard stop: cancel what runs, skip teardown hooks
        self.setup_failed = False
        self.tasks: set[asyncio.Task[None]] = set()  # every VU task, for a hard stop
        self.phase_over = False  # the current phase's time is up
        self.stop_event = asyncio.Event()

    # -- VUs ---------------------------------------------------------------------------
    def new_vu(self, vu_id: int) -> VU:
        return VU(
            vu_id,
            HttpClient(self.http_shared),
            self.metrics,
            self.setup_data,
        )

    async def vu(self, vu_id: int) -> VU | None:
        """The VU with this global id, created (and set up) on first use.

        None if its ``@vu_setup`` failed: that VU runs no iteration (its error is counted).
        """
        vu = self.vus.get(vu_id)
        if vu is not None:
            return vu
        vu = self.new_vu(vu_id)
        self.vus[vu_id] = vu
        self.allocated += 1
        hook = self.scenario.vu_setup
        if hook is not None:
            try:
                await hook(vu)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.record_exception(e, "vu_setup")
                del self.vus[vu_id]
                self.allocated -= 1
                await vu.http.close()
                return None
        return vu

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Start a VU task that a hard stop can cancel."""
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def close_all(self) -> None:
        """Run each VU's ``@vu_teardown`` (concurrently, within graceful-stop; not after
        a hard stop) and close every connection."""
        hook = self.scenario.vu_teardown
        vus = list(self.vus.values())
        if hook is not None and vus and not self.killed:

            async def one(vu: VU) -> None:
                try:
                    await hook(vu)
                except Exception as e:
                    self.record_exception(e, "vu_teardown")

            pending = [self.spawn(one(vu)) for vu in vus]  # a hard stop cancels them
            _, late = await asyncio.wait(pending, timeout=self.options.graceful_stop)
            for t in late:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for vu in vus:
            await vu.http.close()
        self.vus.clear()

    def enter(self) -> None:
        """A VU starts running (closed models) or starts an iteration (open model)."""
        self.active += 1
        self.peak = max(self.peak, self.active)

    def leave(self) -> None:
        self.active -= 1

    def take_peak(self) -> int:
        """The interval's peak of active VUs; the next interval starts from now."""
        peak, self.peak = self.peak, self.active
        return peak

    # -- iterations --------------------------------------------------------------------
    async def iterate(self, vu: VU, lag: float = 0.0) -> None:
        """One iteration. ``lag`` (open model) is how late it started; the caller has
        already handed it to the VU's HTTP client, so closed models never touch it."""
        pick = self._single or self._pick()
        t0 = perf_counter()
        try:
            await pick.fn(vu)
        except asyncio.CancelledError as e:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                self.recorder.add(pick.interrupted)  # the engine stopped this iteration
                raise
            self.recorder.add(pick.errors)  # the scenario raised it itself
            self.record_exception(e, pick.name)
        except RetireVU:
            vu.retired = True
            return
        except (Exception, SystemExit, KeyboardInterrupt) as e:
            # A scenario calling sys.exit() must not end the run and lose its numbers.
            self.recorder.add(pick.errors)
            self.record_exception(e, pick.name)
        pick.duration.values.append(perf_counter() - t0 + lag)
        pick.count += 1
        vu.iteration += 1

    def _pick(self) -> _Pick:
        return self.picks[bisect.bisect_right(self._cum, self.rng.random() * self._total_weight)]

    def move_counts(self) -> None:
        """Hand the iteration counts to the recorder; called just before each flush."""
        for pick in self.picks:
            if pick.count:
                self.recorder.add(pick.iterations, float(pick.count))
                pick.count = 0

    def record_exception(self, exc: BaseException, where: str) -> None:
        kind = type(exc).__name__
        message = str(exc)[:MAX_MESSAGE]
        group = (kind, message)
        if group not in self._error_groups:
            if len(self._error_groups) >= MAX_ERROR_GROUPS:
                message = "(further distinct messages not kept)"
                group = (kind, message)
            self._error_groups.add(group)
            sample = f"in {where}:\n" + "".join(traceback.format_exception(exc))
        else:
            sample = ""
        self.recorder.error(kind, message, sample)

    # -- stopping ----------------------------------------------------------------------
    def is_phase_over(self) -> bool:
        return self.phase_over

    def stop(self) -> None:
        """Start no new iteration; running ones get the graceful-stop time."""
        self.stopping = True
        self.phase_over = True
        self.stop_event.set()

    def kill(self) -> None:
        """Hard stop: cancel every running iteration now."""
        self.stop()
        self.killed = True
        for task in list(self.tasks):
            task.cancel()

    async def finish(
        self, tasks: list[asyncio.Task[None]], timeout: float | None, grace: float | None = None
    ) -> None:
        """Wait for a phase's VU tasks until ``timeout`` (None: until they end) or a stop;
        then let running iterations finish within ``grace`` (default: graceful-stop;
        none after a hard stop) and cancel the rest."""
        if tasks:
            everything: asyncio.Future[Any] = asyncio.gather(*tasks, return_exceptions=True)
            stopper: asyncio.Future[Any] = asyncio.ensure_future(self.stop_event.wait())
            try:
                await asyncio.wait(
                    {everything, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                stopper.cancel()
        self.phase_over = True
        pending = [t for t in tasks if not t.done()]
        if pending:
            if grace is None:
                grace = self.options.graceful_stop
            _, still = await asyncio.wait(pending, timeout=0 if self.killed else grace)
            for t in still:
                t.cancel()
            if still:
                await asyncio.gather(*still, return_exceptions=True)
        for t in tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                exc = t.exception()
                assert exc is not None
                self.record_exception(exc, "engine")
        if not self.stopping:
            self.phase_over = False


def _is_open(options: EngineOptions) -> bool:
    return isinstance(options.model, ArrivalRate)
