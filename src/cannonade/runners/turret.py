"""``cannonade turret``: a Python OCT turret, as OCT's turret guide describes one.

It reads OCT's turret configuration, subscribes to the HQ's PUB (``''`` and its uuid),
pushes status messages (on start, on every change, every second) and one result per
transaction. Its scripts are OCT's: a module with a ``Transaction`` class whose
``run()`` is one transaction, optional ``setup()``/``tear_down()``, and a
``custom_timers`` dict (or :func:`timer`). Cannons are threads here — OCT scripts are
synchronous — started over ``rampup`` seconds when the HQ says ``start``.

Only the loop thread touches the sockets; cannons hand results over a queue.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import queue
import sys
import threading
import time
import traceback
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from cannonade.errors import ConfigError, ProtocolError, ScenarioError
from cannonade.protocol.control import Command, decode_command, split_channel
from cannonade.transport.sockets import Poller, Transport

CONFIG_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "cannons": int,
    "rampup": (int, float),
    "script": str,
    "hq_address": str,
    "hq_publisher": int,
    "hq_rc": int,
}


@dataclass(frozen=True, slots=True)
class TurretConfig:
    name: str
    cannons: int
    rampup: float
    script: Path
    hq_address: str
    hq_publisher: int
    hq_rc: int


def load_config(path: str | Path) -> TurretConfig:
    """OCT's turret.json; every key is required (a missing one is named)."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text())
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the turret configuration: {e.strerror}") from None
    except ValueError as e:
        raise ConfigError(f"{p}: not JSON: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: the turret configuration must be a JSON object")
    for key, kind in CONFIG_KEYS.items():
        if key not in raw:
            raise ConfigError(f"{p}: missing key {key!r} (a turret needs {', '.join(CONFIG_KEYS)})")
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ConfigError(f"{p}: {key!r} has the wrong type ({type(value).__name__})")
    if raw["cannons"] < 1 or raw["rampup"] < 0:
        raise ConfigError(f"{p}: 'cannons' must be >= 1 and 'rampup' >= 0")
    script = Path(raw["script"])
    if not script.is_absolute():
        script = p.parent / script
    return TurretConfig(
        raw["name"],
        raw["cannons"],
        float(raw["rampup"]),
        script,
        raw["hq_address"] or "127.0.0.1",  # OCT's example leaves it empty for local
        raw["hq_publisher"],
        raw["hq_rc"],
    )


def load_script(path: Path) -> type:
    """The script's ``Transaction`` class, checked before the turret says it is ready."""
    spec = importlib.util.spec_from_file_location(f"oct_script_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ScenarioError("cannot be imported as a Python module", str(path))
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except FileNotFoundError:
        raise ScenarioError("no such script", str(path)) from None
    except Exception as e:
        raise ScenarioError(f"{type(e).__name__} while importing: {e}", str(path)) from None
    tx = getattr(module, "Transaction", None)
    if not isinstance(tx, type) or not callable(getattr(tx, "run", None)):
        raise ScenarioError("defines no Transaction class with a run() method", str(path))
    return tx


@contextlib.contextmanager
def timer(transaction: Any, name: str) -> Iterator[None]:
    """``with timer(self, "login"):`` — records a custom timer, as OCT scripts do by hand."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        transaction.custom_timers[name] = time.perf_counter() - t0


class Turret:
    def __init__(self, config: TurretConfig, transaction: type, transport: Transport) -> None:
        self.config = config
        self.transaction = transaction
        self.uuid = str(uuidlib.uuid4())
        c = config
        self.sub = transport.connect("sub", c.hq_address, c.hq_publisher, None, self.uuid)
        self.push = transport.connect("push", c.hq_address, c.hq_rc, None)
        self.transport = transport
        self.status = "ready"
        self.results: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.firing = threading.Event()
        self.cannons: list[threading.Thread] = []
        self.started = 0.0

    def announce(self) -> None:
        c = self.config
        msg = {
            "turret": c.name,
            "status": self.status,
            "uuid": self.uuid,
            "rampup": c.rampup,
            "script": c.script.name,
            "cannons": c.cannons,
        }
        self.push.send(json.dumps(msg).encode())

    def _set(self, status: str) -> None:
        if status != self.status:
            self.status = status
            self.announce()

    def serve(self, stop: threading.Event) -> None:
        poller = Poller(self.sub)
        next_beat = 0.0
        try:
            while not stop.is_set() and self.status != "Killed":
                if poller.poll(0.05):
                    self._commands()
                self._ship()
                now = time.monotonic()
                if now >= next_beat:
                    self.announce()
                    next_beat = now + 1.0
        finally:
            self._cease()
            self._ship()
            self.sub.close()
            self.push.close()

    def _commands(self) -> None:
        while (frame := self.sub.recv()) is not None:
            try:
                channel, body = split_channel(frame)
                command, _ = decode_command(body)
            except ProtocolError:
                continue
            if channel and channel != self.uuid:
                continue
            if command is Command.STATUS_REQUEST:
                self.announce()
            elif command is Command.START and not self.firing.is_set():
                self._fire()
            elif command is Command.STOP:
                self._cease()
                self._set("ready")
            elif command is Command.KILL:
                self._cease()
                self._set("Killed")

    def _fire(self) -> None:
        self.firing.set()
        self.started = time.time()
        n = self.config.cannons
        for i in range(n):
            delay = self.config.rampup * i / n
            t = threading.Thread(target=self._cannon, args=(delay,), name=f"cannon-{i}")
            t.daemon = True
            t.start()
            self.cannons.append(t)
        self._set("running")

    def _cease(self) -> None:
        self.firing.clear()
        for t in self.cannons:
            t.join(timeout=30)
        self.cannons = []

    def _cannon(self, delay: float) -> None:
        until = time.monotonic() + delay  # the ramp-up: a stop during it ends it
        while self.firing.is_set() and time.monotonic() < until:
            time.sleep(min(0.05, max(0.0, until - time.monotonic())))
        if not self.firing.is_set():
            return
        try:
            tx = self.transaction()
            if not hasattr(tx, "custom_timers"):
                tx.custom_timers = {}
            if callable(getattr(tx, "setup", None)):
                tx.setup()
        except Exception as e:
            self.results.put(self._result(0.0, f"setup: {type(e).__name__}: {e}", {}))
            return
        while self.firing.is_set():
            tx.custom_timers = {}
            error = ""
            t0 = time.perf_counter()
            try:
                tx.run()
            except Exception as e:
                error = f"{type(e).__name__}: {e}"
                if not str(e):
                    error = traceback.format_exception_only(e)[-1].strip()
            took = time.perf_counter() - t0
            self.results.put(self._result(took, error, dict(tx.custom_timers)))
        if callable(getattr(tx, "tear_down", None)):
            with contextlib.suppress(Exception):
                tx.tear_down()

    def _result(self, took: float, error: str, timers: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        return {
            "turret_name": self.config.name,
            "elapsed": now - self.started,
            "epoch": now,
            "scriptrun_time": took,
            "error": error,
            "custom_timers": {k: float(v) for k, v in timers.items() if isinstance(v, int | float)},
        }

    def _ship(self) -> None:
        for _ in range(10_000):
            try:
                result = self.results.get_nowait()
            except queue.Empty:
                return
            self.push.send(json.dumps(result).encode())
