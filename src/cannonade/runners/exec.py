"""``--exec PROGRAM``: any executable as a scenario (go-lo's load-test binaries).

Each iteration of a VU runs the program once and reads its stdout: one JSON object a
line, in go-lo's Output format or cannonade's own (one loads-protocol message a line,
see docs/protocols.md). Every line becomes measurements of that VU's cannon, like a
Python scenario's requests; a line that does not parse is counted as an error (with
the first one kept as a sample) and never stops the run. stderr goes to a log file per
cannon. A program that exits non-zero is an iteration error; one still running when
the run is stopped is terminated (then killed after 2 s).

The program sees ``CANNONADE_RUN_ID``, ``CANNONADE_VU`` (global VU id) and
``CANNONADE_ITERATION`` in its environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import IO, Any

from cannonade.errors import ProtocolError
from cannonade.protocol.golo import decode_line
from cannonade.scenarios.loader import LoadedScenario, ScenarioFn

MAX_LINE = 1024 * 1024  # a longer line is not a result; it is counted as unparsable
STOP_GRACE = 2.0


class ExecFailed(Exception):
    """The program exited with a non-zero status."""


def exec_scenario(argv: list[str], run_id: str, log: IO[bytes]) -> LoadedScenario:
    async def run(vu: Any) -> None:
        env = dict(
            os.environ,
            CANNONADE_RUN_ID=run_id,
            CANNONADE_VU=str(vu.id),
            CANNONADE_ITERATION=str(vu.iteration),
        )
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env=env,
            limit=MAX_LINE,
        )
        assert proc.stdout is not None
        try:
            while True:
                try:
                    line = await proc.stdout.readline()
                except ValueError:  # longer than MAX_LINE: skip to the next newline
                    vu.record_unparsable(b"(a line longer than 1 MiB)")
                    with contextlib.suppress(ValueError):
                        await proc.stdout.readuntil(b"\n")
                    continue
                if not line:
                    break
                try:
                    events = decode_line(line)
                except ProtocolError:
                    vu.record_unparsable(line)
                    continue
                vu.record_foreign(events)
            code = await proc.wait()
        finally:
            if proc.returncode is None:
                await stop_process(proc)
        if code != 0:
            raise ExecFailed(f"{Path(argv[0]).name} exited with status {code}")

    return LoadedScenario(
        path=argv[0],
        sha256="",
        scenarios=(ScenarioFn("exec", run, 1.0),),
    )


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL if it is still there after STOP_GRACE seconds."""
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), STOP_GRACE)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
