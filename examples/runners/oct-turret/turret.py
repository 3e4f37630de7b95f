"""An OCT turret written from OCT's "Writing your own turret" guide and cannonade's
docs/protocols.md section 6 alone: pyzmq and the standard library, no cannonade.

    python turret.py turret.json

It reads OCT's turret configuration (name, cannons, rampup, script, hq_address,
hq_publisher, hq_rc), SUBscribes to the HQ's commands on "" and on its own uuid, and
PUSHes its status and one result per transaction to the HQ's results port:

* status ``Initialized``, then ``ready`` once a first frame from the HQ has arrived
  (so the subscription is live before the HQ sends its one ``start``), ``running``,
  ``Killed`` or ``Aborted``: when it starts, on every change, and every second;
* commands, broadcast (``b' {json}'``, or bare ``{json}``) or directed
  (``b'<uuid> {json}'``), with any ``msg``: ``status_request`` sends the status;
  ``start`` fires (cannon i of n starts ``rampup * i / n`` s later); ``stop`` lets
  each cannon finish its transaction, then ``ready``; ``kill`` does the same, reports
  ``Killed`` and exits. Other commands are ignored;
* each cannon is a thread with its own instance of the script's ``Transaction``
  (``setup()`` if it has one, then ``run()`` in a loop). It pushes its results over
  inproc to the turret, which forwards them: ``turret_name``, ``elapsed`` (s since
  start), ``epoch`` (s), ``scriptrun_time`` (s), ``error`` ("" or "Type: message"),
  ``custom_timers`` (name -> seconds);
* an error inside the script is reported in ``error`` and the cannon goes on; an error
  of the turret itself is reported as status ``Aborted`` before it exits (code 1).

SIGTERM and SIGINT act as ``kill``.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import zmq

KEYS = ("name", "cannons", "rampup", "script", "hq_address", "hq_publisher", "hq_rc")
STATUS_EVERY = 1.0  # s; the HQ calls a turret missing after 3 s of silence
STOP_WAIT = 30.0  # s a cannon may take to finish its transaction after stop/kill


def load_config(path: Path) -> dict[str, Any]:
    config = json.loads(path.read_text())
    missing = [k for k in KEYS if k not in config]
    if missing:
        raise SystemExit(f"{path}: missing key(s) {', '.join(missing)}")
    if not isinstance(config["cannons"], int) or config["cannons"] < 1:
        raise SystemExit(f"{path}: cannons must be an integer >= 1")
    # The script is relative to the configuration file.
    config["script_path"] = (path.parent / config["script"]).resolve()
    return config


def load_transaction(script: Path) -> type:
    spec = importlib.util.spec_from_file_location("v_user", script)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {script}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Transaction


def describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def timers_of(transaction: Any) -> dict[str, float]:
    timers = getattr(transaction, "custom_timers", None) or {}
    return {
        str(k): float(v)
        for k, v in timers.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


class Cannon(threading.Thread):
    def __init__(self, turret: Turret, index: int) -> None:
        super().__init__(name=f"cannon-{index}", daemon=True)
        self.turret = turret
        self.delay = turret.config["rampup"] * index / turret.config["cannons"]

    def run(self) -> None:
        t = self.turret
        push = t.context.socket(zmq.PUSH)
        push.connect(t.inproc)
        try:
            if t.stopping.wait(self.delay):  # rampup
                return
            transaction = t.transaction_class()
            if hasattr(transaction, "setup"):
                try:
                    transaction.setup()
                except Exception as e:
                    push.send_json(t.result(0.0, f"setup: {describe(e)}", {}))
                    return
            while not t.stopping.is_set():
                start = time.perf_counter()
                error = ""
                try:
                    transaction.run()
                except Exception as e:  # the script's error: report it, go on
                    error = describe(e)
                duration = time.perf_counter() - start
                push.send_json(t.result(duration, error, timers_of(transaction)))
        finally:
            push.close(linger=-1)


class Turret:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.uuid = str(uuid.uuid4())
        # Not "ready" until a first frame from the HQ proves the SUB is subscribed: a
        # PUSH connects faster than a subscription propagates (ZeroMQ's slow joiner),
        # and the HQ broadcasts start once, as soon as enough turrets are ready.
        self.status = "Initialized"
        self.started_at = 0.0
        self.cannons: list[Cannon] = []
        self.stopping = threading.Event()
        self.killed = False
        self.transaction_class: type = object
        self.context = zmq.Context()
        host = config["hq_address"] or "127.0.0.1"
        if ":" in host:  # IPv6
            self.context.setsockopt(zmq.IPV6, 1)
            host = f"[{host.strip('[]')}]"
        self.sub = self.context.socket(zmq.SUB)
        self.sub.connect(f"tcp://{host}:{config['hq_publisher']}")
        self.sub.setsockopt_string(zmq.SUBSCRIBE, "")
        self.sub.setsockopt_string(zmq.SUBSCRIBE, self.uuid)
        self.push = self.context.socket(zmq.PUSH)
        self.push.connect(f"tcp://{host}:{config['hq_rc']}")
        self.inproc = f"inproc://results-{self.uuid}"
        self.results = self.context.socket(zmq.PULL)
        self.results.bind(self.inproc)

    # ------------------------------------------------------------ messages
    def send_status(self) -> None:
        self.push.send_json(
            {
                "turret": self.config["name"],
                "status": self.status,
                "uuid": self.uuid,
                "rampup": self.config["rampup"],
                "script": self.config["script"],
                "cannons": self.config["cannons"],
            }
        )

    def set_status(self, status: str) -> None:
        if status != self.status:
            self.status = status
            self.send_status()

    def result(self, duration: float, error: str, timers: dict[str, float]) -> dict[str, Any]:
        now = time.time()
        return {
            "turret_name": self.config["name"],
            "elapsed": now - self.started_at,
            "epoch": now,
            "scriptrun_time": duration,
            "error": error,
            "custom_timers": timers,
        }

    def command(self, frame: bytes) -> str | None:
        """The command a frame carries for this turret, or None."""
        text = frame.decode("utf-8", "replace")
        if not text.startswith("{"):
            channel, _, text = text.partition(" ")
            if channel not in ("", self.uuid):
                return None
        try:
            body = json.loads(text)
        except ValueError:
            return None
        return body.get("command") if isinstance(body, dict) else None

    # ------------------------------------------------------------ actions
    def start(self) -> None:
        if self.cannons:
            return
        self.stopping.clear()
        self.started_at = time.time()
        self.cannons = [Cannon(self, i) for i in range(self.config["cannons"])]
        for cannon in self.cannons:
            cannon.start()
        self.set_status("running")

    def stop(self) -> None:
        self.stopping.set()

    def forward_results(self) -> None:
        while True:
            try:
                frame = self.results.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.push.send(frame)

    def reap(self) -> None:
        """Back to ready once every cannon has finished after a stop."""
        if self.cannons and self.stopping.is_set() and not any(c.is_alive() for c in self.cannons):
            self.cannons = []
            self.forward_results()
            self.set_status("ready")

    # ------------------------------------------------------------ loop
    def serve(self) -> None:
        self.transaction_class = load_transaction(self.config["script_path"])
        self.send_status()
        poller = zmq.Poller()
        poller.register(self.sub, zmq.POLLIN)
        poller.register(self.results, zmq.POLLIN)
        last_status = time.monotonic()
        while not self.killed:
            timeout = max(0.0, last_status + STATUS_EVERY - time.monotonic())
            events = dict(poller.poll(min(timeout, 0.1) * 1000))
            if self.results in events:
                self.forward_results()
            if self.sub in events:
                while True:
                    try:
                        frame = self.sub.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if self.status == "Initialized":
                        self.set_status("ready")
                    self.handle(self.command(frame))
            self.reap()
            if time.monotonic() - last_status >= STATUS_EVERY:
                last_status = time.monotonic()
                self.send_status()
        self.finish_kill()

    def handle(self, command: str | None) -> None:
        if command == "status_request":
            self.send_status()
        elif command == "start":
            self.start()
        elif command == "stop":
            self.stop()
        elif command == "kill":
            self.killed = True

    def finish_kill(self) -> None:
        self.stop()
        deadline = time.monotonic() + STOP_WAIT
        for cannon in self.cannons:
            cannon.join(max(0.0, deadline - time.monotonic()))
        self.forward_results()
        self.cannons = []
        self.set_status("Killed")

    def close(self) -> None:
        self.results.close(linger=0)
        self.sub.close(linger=0)
        self.push.close(linger=1000)  # the last status and results reach the HQ
        # A cannon stuck in its transaction past STOP_WAIT still holds a socket: then
        # leave the context to the process's exit instead of waiting for it forever.
        if not any(isinstance(t, Cannon) and t.is_alive() for t in threading.enumerate()):
            self.context.term()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python turret.py turret.json", file=sys.stderr)
        return 2
    try:
        config = load_config(Path(argv[1]))
    except (OSError, ValueError) as e:
        print(f"cannot read {argv[1]}: {e}", file=sys.stderr)
        return 1
    turret = Turret(config)

    def on_signal(signum: int, frame: object) -> None:
        turret.killed = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"turret {turret.config['name']} {turret.uuid} ready", file=sys.stderr, flush=True)
    code = 0
    try:
        turret.serve()
    except Exception as e:  # the turret's own error: tell the HQ before dying
        print(f"turret aborted: {describe(e)}", file=sys.stderr)
        turret.stopping.set()
        turret.status = "Aborted"
        turret.send_status()
        code = 1
    finally:
        turret.close()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
