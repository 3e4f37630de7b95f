"""The embedded target as a child process (for the demo, tests and benchmarks).

It runs in its own process on purpose: ``/stall`` pauses the target's whole event loop,
which must not pause the load generator measuring it.
"""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from types import TracebackType
from typing import Any

from cannonade.errors import TargetError

READY_PREFIX = "cannonade target listening on "


class TargetProcess:
    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url
        self.port = int(url.rsplit(":", 1)[1].rstrip("/"))

    @classmethod
    def start(cls, port: int = 0, host: str = "127.0.0.1", timeout: float = 15.0) -> TargetProcess:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cannonade.target", "--port", str(port), "--host", host],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        try:
            while time.monotonic() < deadline:
                if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    continue
                line = proc.stdout.readline()
                if not line:
                    break
                if line.startswith(READY_PREFIX):
                    return cls(proc, line[len(READY_PREFIX) :].strip())
        finally:
            sel.close()
        cls._terminate(proc)
        raise TargetError(f"the embedded target did not start within {timeout:.0f} s")

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/__stats", timeout=10) as r:  # noqa: S310
            doc: dict[str, Any] = json.loads(r.read())
            return doc

    def reset(self) -> None:
        req = urllib.request.Request(self.url + "/__stats/reset", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310
            r.read()

    def close(self) -> None:
        self._terminate(self.proc)

    @staticmethod
    def _terminate(proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> TargetProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
