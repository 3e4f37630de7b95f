"""A cannon: one process, one event loop, one partition of the run.

Started by its agent (``python -m cannonade.agent.cannon``), it talks to the agent
over an ipc DEALER socket: JSON commands in, JSON replies and MessagePack deltas out.
It runs user code, so it is the only process whose loop a scenario can stall; that is
why liveness is the agent's job, not the cannon's.

Commands (``k``): ``load`` (scenario path, options, partition), ``setup``, ``start``
(start_at, setup_data), ``stop``, ``kill``, ``teardown`` (setup_data), ``exit``.
Replies: ``hello``, ``loaded`` (hooks) or ``error``, ``setup_done`` (ok, data, error),
``done``, ``teardown_done``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

import msgspec

from cannonade.agent.lifeline import die_with_parent
from cannonade.config import Partition
from cannonade.engine.engine import Engine
from cannonade.engine.tuning import install_uvloop, tune_gc
from cannonade.errors import CannonadeError, ScenarioError
from cannonade.model.metrics import IntervalDelta, SourceId
from cannonade.model.recorder import Recorder
from cannonade.plans.compile import is_plan, load_plan
from cannonade.plans.flow import FlowRunner
from cannonade.protocol.control import MAX_DEPTH, too_deep
from cannonade.protocol.deltas import encode_delta
from cannonade.protocol.options import options_from_wire
from cannonade.runners.exec import exec_scenario
from cannonade.runners.legacy import legacy_scenario
from cannonade.runners.loads_runner import loads_scenario, start_receiver, stop_receiver
from cannonade.runners.record import ForeignRecorder
from cannonade.scenarios.loader import LoadedScenario, load_path
from cannonade.transport.sockets import AsyncDealer, AsyncPull

_json = msgspec.json.Encoder()


class Cannon:
    def __init__(self, channel: AsyncDealer, agent: str, index: int) -> None:
        self.channel = channel
        self.agent = agent
        self.index = index
        self.engine: Engine | None = None
        self.run_id = ""
        self.model_task: asyncio.Task[None] | None = None
        self.hook_task: asyncio.Task[None] | None = None
        self.log: IO[bytes] | None = None
        self.recorder: Recorder | None = None
        self.receiver: tuple[AsyncPull, asyncio.Task[None]] | None = None
        self.flow: FlowRunner | None = None  # a YAML plan's runner (its plugins to close)

    def reply(self, kind: str, **fields: Any) -> None:
        self.channel.send(_json.encode({"k": kind, **fields}))

    def ship(self, delta: IntervalDelta) -> None:
        delta.run_id = self.run_id
        self.channel.send(encode_delta(delta))

    async def serve(self) -> None:
        self.reply("hello", pid=os.getpid())
        while True:
            frame = await self.channel.recv()
            try:
                cmd = msgspec.json.decode(frame)
                kind = cmd["k"]
            except (msgspec.DecodeError, KeyError, TypeError):
                continue  # only our agent talks here; nothing to answer
            if kind == "exit":
                break
            self.handle(kind, cmd)
        await self.finish()

    def handle(self, kind: str, cmd: dict[str, Any]) -> None:
        if kind == "load":
            self.load(cmd)
            return
        engine = self.engine
        if engine is None:
            return
        if kind == "setup" and self.hook_task is None:
            self.hook_task = asyncio.create_task(self.setup(engine))
        elif kind == "start" and self.model_task is None:
            self.model_task = asyncio.create_task(self.run(engine, cmd))
        elif kind == "stop":
            engine.stop()
        elif kind == "kill":
            engine.kill()
        elif kind == "teardown" and self.model_task is not None and self.model_task.done():
            self.hook_task = asyncio.create_task(self.teardown(engine, cmd.get("setup_data")))

    def load(self, cmd: dict[str, Any]) -> None:
        if self.engine is not None:
            return
        recorder = self.recorder = Recorder(SourceId(self.agent, self.index))
        try:
            exec_args = cmd["options"].get("exec")
            runner = cmd["options"].get("test_runner")
            legacy = cmd["options"].get("legacy")
            if legacy is not None:
                scenario = legacy_scenario(Path(cmd["path"]), str(legacy))
            elif runner is not None:
                scenario = self._runner(runner, str(cmd["run_id"]))
            elif exec_args is not None:
                scenario = self._exec(cmd["path"], [str(a) for a in exec_args], str(cmd["run_id"]))
            options = options_from_wire(cmd["options"])
            index, count = cmd["partition"]
            partition = Partition(int(index), int(count))
            flow = None
            if legacy is None and runner is None and exec_args is None:
                if is_plan(cmd["path"]):
                    flow = FlowRunner(load_plan(cmd["path"]), partition, options.seed)
                    scenario = flow.scenario()
                    flow.bind(recorder)  # loads its WASM plugins: their errors are load errors
                    self.flow = flow
                else:
                    scenario = load_path(cmd["path"])
        except CannonadeError as e:
            self.reply("error", message=str(e))
            return
        self.run_id = str(cmd["run_id"])
        self.engine = Engine(
            scenario, options, self.ship, partition=partition, recorder=recorder, run_setup=False
        )
        hooks = [n for n, f in (("setup", scenario.setup), ("teardown", scenario.teardown)) if f]
        self.reply("loaded", hooks=hooks)
        # Everything imported from here on lives for the whole run: keep the young
        # generation collector off it (see cannonade.engine.tuning.tune_gc).
        gc.collect()
        gc.freeze()

    def _exec(self, path: str, args: list[str], run_id: str) -> LoadedScenario:
        """A program as the scenario; its stderr goes to a log that outlives the run."""
        self._exec_log(run_id)
        assert self.log is not None
        return exec_scenario([path, *args], run_id, self.log)

    def _exec_log(self, run_id: str) -> None:
        logs = Path(os.environ.get("CANNONADE_LOG_DIR") or tempfile.gettempdir())
        logs = logs / "cannonade-logs" / run_id
        try:
            logs.mkdir(parents=True, exist_ok=True)
            self.log = (logs / f"{self.agent[:8]}-cannon-{self.index}.log").open("ab")
        except OSError as e:
            raise ScenarioError(f"cannot write the program's log in {logs}: {e.strerror}") from None

    def _runner(self, spec: dict[str, Any], run_id: str) -> LoadedScenario:
        """loads' external runners: a receiver for what they push, and a scenario that
        starts one per user of each cycle step."""
        assert self.recorder is not None
        self._exec_log(run_id)
        assert self.log is not None
        home = tempfile.mkdtemp(prefix="cannonade-loads-")
        self.receiver = start_receiver(f"{home}/receiver.ipc", ForeignRecorder(self.recorder))
        hits = spec.get("hits")
        return loads_scenario(
            [str(a) for a in spec["argv"]],
            self.receiver[0].endpoint,
            self.agent,
            run_id,
            int(hits) if hits is not None else None,
            spec.get("duration"),
            self.log,
        )

    async def setup(self, engine: Engine) -> None:
        ok, data = await engine.setup_phase()
        why = ""
        if too_deep(data):
            why = f"@setup returned data nested deeper than {MAX_DEPTH} levels"
        else:
            try:
                _json.encode(data)
            except (TypeError, OverflowError, ValueError) as e:
                why = f"@setup returned data that is not JSON: {e}"
        if why:
            self.reply("setup_done", ok=False, error=why)
            return
        self.reply("setup_done", ok=ok, data=data, error="" if ok else "@setup failed")

    async def run(self, engine: Engine, cmd: dict[str, Any]) -> None:
        start_at = cmd.get("start_at")
        await engine.model_phase(
            float(start_at) if start_at is not None else None, cmd.get("setup_data")
        )
        self.reply("done")

    async def teardown(self, engine: Engine, setup_data: Any) -> None:
        await engine.teardown_phase(setup_data)
        self.reply("teardown_done")

    async def finish(self) -> None:
        for task in (self.model_task, self.hook_task):
            if task is not None and not task.done():
                if self.engine is not None:
                    self.engine.kill()
                await asyncio.gather(task, return_exceptions=True)
        if self.receiver is not None:
            await stop_receiver(*self.receiver)
        if self.flow is not None:
            await self.flow.close()
        if self.engine is not None:
            self.engine.final_flush()
        if self.log is not None:
            self.log.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cannonade-cannon")
    p.add_argument("--ipc", required=True)
    p.add_argument("--agent", required=True)
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--parent", type=int, required=True)
    p.add_argument("--identity", required=True, help="its name on the agent's socket")
    args = p.parse_args(argv)
    die_with_parent(args.parent)
    # The agent decides when a cannon stops; a Ctrl-C in the terminal reaches the whole
    # process group and must not kill the cannon before it has shipped its numbers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    install_uvloop()
    tune_gc()
    channel = AsyncDealer(args.ipc, args.identity.encode())
    try:
        asyncio.run(Cannon(channel, args.agent, args.index).serve())
    finally:
        channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
