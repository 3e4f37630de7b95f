"""Load models: who runs which iteration when.

Every executor works on *global* ids (VU numbers, arrival indices) and keeps those its
partition owns, so N engines told "you are partition k of N" together run exactly the
load one engine would. Time comes from the event loop's monotonic clock.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from cannonade.config import (
    ArrivalRate,
    Cycles,
    Partition,
    RampingVus,
    SharedIterations,
    Stage,
)
from cannonade.model.metrics import DROPPED_ITERATIONS, Key

if TYPE_CHECKING:
    from cannonade.engine.runtime import Runtime

RAMP_TICK = 0.05  # how often ramping-vus re-reads its target


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    delay = when - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


# -- closed: loads/OCT user cycles ------------------------------------------------------


async def run_cycles(rt: Runtime, model: Cycles) -> None:
    loop = asyncio.get_running_loop()
    # --max-duration bounds the whole run, not each cycle.
    run_deadline = loop.time() + rt.options.max_duration
    for users in model.users:
        if rt.stopping:
            return
        start = loop.time()
        tasks = [
            rt.spawn(_cycle_vu(rt, loop, j, users, start, model))
            for j in range(users)
            if rt.partition.owns(j)
        ]
        limit = model.duration if model.duration is not None else run_deadline - start
        await rt.finish(tasks, max(limit, 0.0))


async def _cycle_vu(
    rt: Runtime, loop: asyncio.AbstractEventLoop, j: int, users: int, start: float, model: Cycles
) -> None:
    if model.rampup:
        await _sleep_until(loop, start + model.rampup * j / users)
    if rt.phase_over:
        return
    vu = await rt.vu(j)
    if vu is None:
        return
    vu.cycle_users = users
    rt.enter()
    try:
        if model.hits is not None:
            for _ in range(model.hits):
                if rt.is_phase_over() or vu.retired:  # a call: the flag changes as we await
                    break
                await rt.iterate(vu)
        else:
            while not rt.phase_over and not vu.retired:
                await rt.iterate(vu)
    finally:
        rt.leave()


# -- closed: shared iterations ------------------------------------------------------------


async def run_shared_iterations(rt: Runtime, model: SharedIterations) -> None:
    # Only partitions that own a VU may take iterations, or some would go unrun.
    part = rt.partition
    active = min(part.count, model.vus)
    remaining = [
        Partition(part.index, active).share(model.iterations) if part.index < active else 0
    ]

    async def one(j: int) -> None:
        vu = await rt.vu(j)
        if vu is None:
            return
        rt.enter()
        try:
            while remaining[0] > 0 and not rt.phase_over and not vu.retired:
                remaining[0] -= 1
                await rt.iterate(vu)
        finally:
            rt.leave()

    tasks = [rt.spawn(one(j)) for j in range(model.vus) if rt.partition.owns(j)]
    await rt.finish(tasks, rt.options.max_duration)


# -- closed: k6 ramping-vus ----------------------------------------------------------------


def stage_value(start: float, stages: tuple[Stage, ...], t: float) -> float:
    """The linearly interpolated target at ``t`` seconds into the stages."""
    value = start
    for st in stages:
        if t <= st.duration:
            if st.duration == 0:
                return st.target
            return value + (st.target - value) * (t / st.duration)
        t -= st.duration
        value = st.target
    return value


async def run_ramping_vus(rt: Runtime, model: RampingVus) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    total = sum(s.duration for s in model.stages)
    desired = [0]
    running: dict[int, asyncio.Task[None]] = {}
    tasks: list[asyncio.Task[None]] = []

    async def one(j: int) -> None:
        vu = await rt.vu(j)
        if vu is None:
            return
        rt.enter()
        try:
            # Retire once ramped down past this id; the iteration in flight completes.
            while not rt.phase_over and j < desired[0] and not vu.retired:
                await rt.iterate(vu)
        finally:
            rt.leave()
            running.pop(j, None)

    async def control() -> None:
        while not rt.phase_over:
            elapsed = loop.time() - start
            if elapsed >= total:
                break
            desired[0] = int(stage_value(model.start_vus, model.stages, elapsed) + 1e-9)
            for j in range(desired[0]):
                if rt.partition.owns(j) and j not in running:
                    t = running[j] = rt.spawn(one(j))
                    tasks.append(t)
            await asyncio.sleep(RAMP_TICK)

    controller = asyncio.create_task(control())
    await rt.finish([controller], total, grace=0.0)
    await rt.finish(tasks, 0.0)


# -- open: arrival rate ------------------------------------------------------------------


def arrival_times(model: ArrivalRate) -> Iterator[float]:
    """Intended start (seconds from the beginning) of arrival 0, 1, 2, ... in order.

    Arrival ``i`` happens when the integral of the rate reaches ``i``, so a constant
    rate r gives i / r and a ramp spreads arrivals exactly as the rate rises.
    """
    if not model.stages:
        if model.rate <= 0:
            return
        n = math.ceil(model.duration * model.rate - 1e-9)
        for i in range(n):
            yield i / model.rate
        return
    t0 = 0.0
    done = 0.0  # arrivals (integral of the rate) before this segment
    r0 = model.rate
    i = 0
    for st in model.stages:
        r1, d = st.target, st.duration
        # Within the segment: count(t) = done + r0 t + (r1 - r0) t^2 / (2 d)
        seg_total = (r0 + r1) / 2 * d
        while i < done + seg_total - 1e-9:
            need = i - done
            a = (r1 - r0) / (2 * d) if d > 0 else 0.0
            if abs(a) < 1e-12:
                t = need / r0 if r0 > 0 else 0.0
            else:
                disc = r0 * r0 + 4 * a * need
                t = (-r0 + math.sqrt(max(disc, 0.0))) / (2 * a)
            yield t0 + min(max(t, 0.0), d)
            i += 1
        t0 += d
        done += seg_total
        r0 = r1


def default_max_vus(model: ArrivalRate) -> int:
    peak = max([model.rate, *(s.target for s in model.stages)])
    return max(model.pre_allocated_vus, min(10_000, math.ceil(peak) + 10))


async def run_arrival_rate(rt: Runtime, model: ArrivalRate) -> None:
    loop = asyncio.get_running_loop()
    part = rt.partition
    max_vus = part.share(model.max_vus or default_max_vus(model))
    max_vus = max(max_vus, 1)
    start = loop.time()
    pending: deque[float] = deque()  # intended loop times of released, unstarted arrivals
    idle: deque[asyncio.Future[None]] = deque()
    tasks: list[asyncio.Task[None]] = []
    next_id = [part.index]

    async def one(j: int) -> None:
        vu = await rt.vu(j)
        if vu is None:
            return
        while True:
            if pending:
                intended = pending.popleft()
                lag = loop.time() - intended
                lag = lag if lag > 0 else 0.0
                vu.http.lag = lag
                rt.enter()
                try:
                    await rt.iterate(vu, lag)
                finally:
                    rt.leave()
            elif rt.phase_over:
                return
            else:
                waiter: asyncio.Future[None] = loop.create_future()
                idle.append(waiter)
                await waiter

    def spawn() -> None:
        tasks.append(rt.spawn(one(next_id[0])))
        next_id[0] += part.count

    for _ in range(part.share(model.pre_allocated_vus)):
        spawn()

    async def dispatch() -> None:
        for index, t in enumerate(arrival_times(model)):
            if index % part.count == part.index:
                when = start + t
                if when > loop.time():
                    await _sleep_until(loop, when)
                if rt.phase_over:
                    return
                pending.append(when)
                while idle and idle[0].done():
                    idle.popleft()
                if idle:
                    idle.popleft().set_result(None)
                elif len(tasks) < max_vus:
                    spawn()

    dispatcher = asyncio.create_task(dispatch())
    planned = sum(s.duration for s in model.stages) if model.stages else model.duration
    # The dispatcher only sleeps between arrivals: on a stop it goes at once (grace 0).
    await rt.finish([dispatcher], planned + 1.0, grace=0.0)
    # Time is up: wake idle VUs so they see the end; late arrivals still queued are dropped.
    rt.phase_over = True
    dropped = len(pending)
    pending.clear()
    for w in idle:
        if not w.done():
            w.set_result(None)
    await rt.finish(tasks, 0.0)
    if dropped:
        rt.recorder.add(Key(DROPPED_ITERATIONS), float(dropped))
