"""One engine: runs its partition of a load model and ships a delta every second.

The engine knows nothing of where deltas go: ``sink`` is called with each
:class:`IntervalDelta` (in-process aggregation for a one-process run; a ZeroMQ socket
for a cannon under an agent).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from cannonade.config import (
    ArrivalRate,
    Cycles,
    EngineOptions,
    Lane,
    LoadModel,
    Partition,
    RampingVus,
    SharedIterations,
)
from cannonade.engine import executors
from cannonade.engine.runtime import Runtime
from cannonade.model.metrics import VUS, VUS_MAX, IntervalDelta, Key
from cannonade.model.recorder import Recorder
from cannonade.scenarios.loader import LoadedScenario

Sink = Callable[[IntervalDelta], object]


async def _sleep_until(at: float | None) -> None:
    if at is not None:
        delay = at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass(slots=True)
class EngineResult:
    started: float  # epoch seconds
    ended: float
    stopped_early: bool
    setup_data: Any = None
    setup_failed: bool = False


class Engine:
    def __init__(
        self,
        scenario: LoadedScenario,
        options: EngineOptions,
        sink: Sink,
        *,
        partition: Partition | None = None,
        recorder: Recorder | None = None,
        run_setup: bool | None = None,
        setup_data: Any = None,
    ) -> None:
        self.partition = partition or Partition()
        self.recorder = recorder or Recorder()
        self.options = options
        self.sink = sink
        seed = options.seed if options.seed is not None else random.randrange(1 << 30)
        self.runtime = Runtime(
            scenario,
            options,
            self.partition,
            self.recorder,
            random.Random(seed + self.partition.index),
            setup_data,
        )
        # A plan's scenarios run side by side, each on a runtime of its own (its VUs,
        # model and stop state) sharing the recorder; the first runtime runs the hooks.
        self.lanes: list[tuple[Lane, Runtime]] = []
        by_name = {s.name: s for s in scenario.scenarios}
        for i, lane in enumerate(options.lanes):
            lane_scenario = dataclasses.replace(
                scenario, scenarios=(by_name[lane.name],), setup=None, teardown=None
            )
            lane_options = dataclasses.replace(
                options, model=lane.model, graceful_stop=lane.graceful_stop, lanes=()
            )
            rng = random.Random(seed + self.partition.index + 7919 * (i + 1))
            rt = Runtime(
                lane_scenario, lane_options, self.partition, self.recorder, rng, setup_data
            )
            self.lanes.append((lane, rt))
        self.runtimes = [self.runtime, *(rt for _, rt in self.lanes)]
        self._flushed_second, self._flushed_peak = -1, 0
        # The setup hook runs once per run: in the first partition unless told otherwise.
        self._run_setup = self.partition.index == 0 if run_setup is None else run_setup

    def stop(self) -> None:
        """Graceful stop (first Ctrl-C): no new iterations, running ones may finish."""
        for rt in self.runtimes:
            rt.stop()

    def kill(self) -> None:
        """Hard stop (second Ctrl-C): cancel running iterations, skip teardown hooks.
        What was measured is still flushed."""
        for rt in self.runtimes:
            rt.kill()

    async def _close_all(self) -> None:
        for rt in self.runtimes:
            await rt.close_all()

    async def run(self, start_at: float | None = None) -> EngineResult:
        """Run the whole model. ``start_at`` (epoch seconds) aligns several engines."""
        await _sleep_until(start_at)
        started = time.time()
        rt = self.runtime
        try:
            if self._run_setup and rt.scenario.setup is not None:
                await self._phase(self._setup())
            if not rt.stopping:
                await self._phase(self._run_model(), hook=False)
            if self._run_setup and rt.scenario.teardown is not None and not rt.killed:
                await self._phase(self._teardown())
        finally:
            try:
                await self._close_all()
            finally:
                # Whatever happened above, what was measured goes out.
                self.final_flush()
        return EngineResult(started, time.time(), rt.stopping, rt.setup_data, rt.setup_failed)

    # -- the phases one at a time, for a cannon that the HQ drives ------------------------
    async def setup_phase(self) -> tuple[bool, Any]:
        """Run ``@setup`` alone: (ok, its return value)."""
        rt = self.runtime
        if rt.scenario.setup is not None:
            await self._phase(self._setup())
        return not rt.setup_failed, rt.setup_data

    async def model_phase(self, start_at: float | None, setup_data: Any) -> EngineResult:
        """Run this partition's share of the model, with another cannon's setup data."""
        rt = self.runtime
        for each in self.runtimes:
            each.setup_data = setup_data
        await _sleep_until(start_at)
        started = time.time()
        try:
            if not rt.stopping:
                await self._phase(self._run_model(), hook=False)
        finally:
            await self._close_all()
            self._flush(math.floor(time.time()))
        return EngineResult(started, time.time(), rt.stopping, rt.setup_data, rt.setup_failed)

    async def teardown_phase(self, setup_data: Any) -> None:
        rt = self.runtime
        rt.setup_data = setup_data
        if rt.scenario.teardown is not None and not rt.killed:
            await self._phase(self._teardown())

    def final_flush(self) -> None:
        self._flush(math.floor(time.time()), final=True)

    async def _phase(self, work: Coroutine[Any, Any, None], hook: bool = True) -> None:
        """Run one phase with the per-second ticker. A hook (setup/teardown) runs as a
        task a hard stop may cancel; the model's executor handles a stop itself."""
        ticker = asyncio.create_task(self._tick())
        try:
            if hook:
                await asyncio.gather(self.runtime.spawn(work), return_exceptions=True)
            else:
                await work
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)

    async def _setup(self) -> None:
        rt = self.runtime
        assert rt.scenario.setup is not None
        vu = rt.new_vu(-1)
        try:
            rt.setup_data = await rt.scenario.setup(vu)
        except Exception as e:
            rt.record_exception(e, "setup")
            # A failed setup means the scenario's precondition is missing: run nothing.
            rt.setup_failed = True
            rt.stop()
        finally:
            await vu.http.close()

    async def _teardown(self) -> None:
        rt = self.runtime
        assert rt.scenario.teardown is not None
        vu = rt.new_vu(-2)
        try:
            await rt.scenario.teardown(vu, rt.setup_data)
        except Exception as e:
            rt.record_exception(e, "teardown")
        finally:
            await vu.http.close()

    async def _run_model(self) -> None:
        if self.lanes:
            await asyncio.gather(*(self._run_lane(lane, rt) for lane, rt in self.lanes))
        else:
            await _run_executor(self.runtime, self.options.model)

    async def _run_lane(self, lane: Lane, rt: Runtime) -> None:
        if lane.start_time > 0:
            try:  # a stop during the wait means the lane never starts
                await asyncio.wait_for(rt.stop_event.wait(), lane.start_time)
                return
            except TimeoutError:
                pass
        if not rt.stopping:
            await _run_executor(rt, lane.model)

    async def _tick(self) -> None:
        # Flush on wall-clock second boundaries so every engine's delta for second S
        # covers the same second and they merge into one point.
        boundary = math.floor(time.time()) + 1
        while True:
            await asyncio.sleep(max(0.0, boundary - time.time()))
            self._flush(boundary - 1)
            # Advance by one second, never re-reading the second from the clock (a timer
            # firing a hair early would flush the same second twice); after a stall,
            # catch up to the present instead of flushing empty past seconds.
            boundary = max(boundary + 1, math.floor(time.time()))

    def _flush(self, second: int, final: bool = False) -> None:
        peak = allocated = 0
        for rt in self.runtimes:
            rt.move_counts()
            peak += rt.take_peak()
            allocated += rt.allocated
        # A receiver keeps a source's last gauge value per second, so a second flushed
        # twice (a phase's end, then the final flush) must repeat the second's peak.
        if second == self._flushed_second:
            peak = max(peak, self._flushed_peak)
        self._flushed_second, self._flushed_peak = second, peak
        self.recorder.gauge(Key(VUS), float(peak))
        self.recorder.gauge(Key(VUS_MAX), float(allocated))
        self.sink(self.recorder.flush(second, final=final))


async def _run_executor(rt: Runtime, model: LoadModel) -> None:
    if isinstance(model, Cycles):
        await executors.run_cycles(rt, model)
    elif isinstance(model, RampingVus):
        await executors.run_ramping_vus(rt, model)
    elif isinstance(model, SharedIterations):
        await executors.run_shared_iterations(rt, model)
    elif isinstance(model, ArrivalRate):
        await executors.run_arrival_rate(rt, model)
