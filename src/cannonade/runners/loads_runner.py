"""``--test-runner 'node runner.js {test}'``: loads' external runners, in any language.

As loads does, each user of each cycle step gets a runner process of its own, told
where to report and what to do by its environment:

    LOADS_ZMQ_RECEIVER   ipc:// address to push JSON loads messages to (one per frame)
    LOADS_AGENT_ID       the agent's id       LOADS_RUN_ID        the run's id
    LOADS_TOTAL_USERS    users in this step   LOADS_CURRENT_USER  this user, from 1
    LOADS_TOTAL_HITS     hits to make, or LOADS_DURATION seconds to run
    LOADS_CURRENT_HIT    1

The runner makes the hits itself, so each VU runs its runner once per step; the run's
``--graceful-stop`` bounds a runner that overruns, after which it is terminated. What
the runners push is decoded (protocol/loads.py) and recorded into the cannon's
measurements as it arrives; a frame that does not decode is counted, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import IO, Any

from cannonade.errors import ProtocolError
from cannonade.protocol.deltas import MAX_FRAME
from cannonade.protocol.loads import decode_loads
from cannonade.runners.exec import ExecFailed, stop_process
from cannonade.runners.record import ForeignRecorder
from cannonade.scenarios.loader import LoadedScenario, ScenarioFn
from cannonade.transport.sockets import AsyncPull


async def receive(pull: AsyncPull, recorder: ForeignRecorder) -> None:
    """Record what the runners push, until cancelled. A frame that is refused is counted
    as an error whose sample names where it came from and how it began."""
    source = recorder.recorder.source
    where = f"pushed to agent {source.agent} cannon {source.cannon}"
    while True:
        frame = await pull.recv()
        if len(frame) > MAX_FRAME:
            recorder.recorder.error(
                "runner message over the size cap",
                f"{len(frame)} bytes (cap {MAX_FRAME})",
                f"{where}: {frame[:200]!r}",
            )
            continue
        try:
            events = decode_loads(frame)
        except ProtocolError as e:
            recorder.recorder.error(
                "unparsable runner message", str(e)[:200], f"{where}: {frame[:200]!r}"
            )
            continue
        recorder.record_all(events)


def loads_scenario(
    argv: list[str],
    receiver: str,
    agent: str,
    run_id: str,
    hits: int | None,
    duration: float | None,
    log: IO[bytes],
) -> LoadedScenario:
    async def run(vu: Any) -> None:
        env = dict(
            os.environ,
            LOADS_ZMQ_RECEIVER=receiver,
            LOADS_AGENT_ID=agent,
            LOADS_RUN_ID=run_id,
            LOADS_TOTAL_USERS=str(vu.cycle_users),
            LOADS_CURRENT_USER=str(vu.id + 1),
            LOADS_CURRENT_HIT="1",
        )
        if hits is not None:
            env["LOADS_TOTAL_HITS"] = str(hits)
        else:
            env["LOADS_DURATION"] = f"{duration or 0:g}"
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, env=env
        )
        try:
            code = await proc.wait()
        finally:
            if proc.returncode is None:
                await stop_process(proc)
        if code != 0:
            raise ExecFailed(f"test runner {argv[0]} exited with status {code}")

    return LoadedScenario(
        path=" ".join(argv), sha256="", scenarios=(ScenarioFn("runner", run, 1.0),)
    )


def start_receiver(path: str, recorder: ForeignRecorder) -> tuple[AsyncPull, asyncio.Task[None]]:
    pull = AsyncPull(path)
    return pull, asyncio.create_task(receive(pull, recorder))


async def stop_receiver(pull: AsyncPull, task: asyncio.Task[None]) -> None:
    # Messages still queued are read first: a runner's last hits count.
    await asyncio.sleep(0.2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    pull.close()
