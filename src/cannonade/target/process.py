"""The embedded target as a child process (for the demo, tests and benchmarks).

It runs in its own process on purpose: ``/stall`` pauses the target's whole event loop,
which must not pause the load generator measuring it. Standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from cannonade.errors import TargetError

__all__ = ["TargetProcess", "start_target"]

STARTUP_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
READY_PREFIX = "cannonade target listening on "

# The target is on loopback; an http_proxy in the environment must not be consulted.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class TargetProcess:
    """A target subprocess: its URL, a view of its statistics, and a way to stop it."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, stderr: IO[bytes]) -> None:
        self._process = process
        self._stderr = stderr
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])
        self.pid = process.pid

    def _check_alive(self) -> None:
        code = self._process.poll()
        if code is not None:
            raise RuntimeError(f"the target process exited with code {code}: {self.stderr()}")

    def _call(self, method: str, path: str) -> Any:
        self._check_alive()
        request = urllib.request.Request(self.url + path, method=method)
        with _OPENER.open(request, timeout=10) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        """The target's ``/__stats`` document."""
        stats: dict[str, Any] = self._call("GET", "/__stats")
        return stats

    def delays(self) -> list[float]:
        """Every delay ``/delay`` injected since the last reset, in ms, in order."""
        delays: list[float] = self._call("GET", "/__delays")
        return delays

    def reset(self) -> None:
        """Zero the target's counters and its record of delays."""
        self._call("POST", "/__stats/reset")

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")[-4000:]

    def terminate(self) -> int:
        """SIGTERM, then SIGKILL if it has not exited within five seconds; the exit code."""
        process = self._process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def stop(self) -> None:
        """Terminate the process and release its pipes."""
        self.terminate()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._stderr.close()

    def __enter__(self) -> TargetProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _read_ready_line(process: subprocess.Popen[bytes], timeout: float) -> str | None:
    # A thread, because a pipe read cannot time out portably; it ends when the pipe does.
    lines: list[bytes] = []
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not lines:
        return None
    return lines[0].decode("utf-8", "replace").strip()


def start_target(timeout: float = STARTUP_TIMEOUT_S) -> TargetProcess:
    """Start ``python -m cannonade.target --port 0`` and wait until it listens."""
    env = dict(os.environ)
    # Make the subprocess import this very copy of cannonade, installed or not.
    source_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, env.get("PYTHONPATH")) if p)
    # Outlives this function (the TargetProcess closes it), hence no ``with``.
    stderr = tempfile.TemporaryFile()  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "cannonade.target", "--port", "0", "--exit-with-parent"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=env,
    )
    line = _read_ready_line(process, timeout)
    target = TargetProcess(process, "http://127.0.0.1:0", stderr)
    if line is None or not line.startswith(READY_PREFIX):
        target.terminate()
        stderr_text = target.stderr()
        target.stop()
        reason = f"printed {line!r}" if line else f"did not start within {timeout:g} s"
        raise TargetError(f"the cannonade target {reason}; stderr: {stderr_text}")
    target.url = line[len(READY_PREFIX) :]
    target.port = int(target.url.rsplit(":", 1)[1])
    return target
