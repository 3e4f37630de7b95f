import json
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class RunResult:
    code: int
    stdout: str
    stderr: str
    summary: dict | None

    def metric(self, name):
        assert self.summary is not None, self.stderr
        return self.summary["metrics"][name]


def run_command(scenario, export, *args):
    """The `cannonade run` command line every e2e test uses: quiet, with an export and
    a database of its own beside the export."""
    return [
        sys.executable,
        "-m",
        "cannonade",
        "run",
        str(scenario),
        "--quiet",
        "--summary-export",
        str(export),
        "--db",
        str(Path(export).parent / "runs.db"),
        *args,
    ]


@pytest.fixture
def run_cli(tmp_path):
    """Run `cannonade run` as a real process; returns exit code, output and the export."""

    def run(scenario_body, *args, timeout=90, name="scenario.py"):
        scenario = tmp_path / name
        scenario.write_text(textwrap.dedent(scenario_body))
        export = tmp_path / "summary.json"
        if export.exists():
            export.unlink()
        proc = subprocess.run(
            run_command(scenario, export, *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        # A crash anywhere in the stack must never hide behind a passing count.
        assert "Traceback (most recent call last)" not in proc.stderr, proc.stderr
        summary = json.loads(export.read_text()) if export.exists() else None
        return RunResult(proc.returncode, proc.stdout, proc.stderr, summary)

    return run


@pytest.fixture
def scenario_dir(tmp_path) -> Path:
    return tmp_path


def descendants(pid):
    """Every live process under ``pid`` (from /proc, no psutil)."""
    children = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    out: Path
    err: Path
    export: Path | None = None

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} still running after {timeout:g}s:\n{self.stderr()}")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM (what stops an agent), then the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def summary(self) -> dict:
        assert self.export is not None
        assert self.export.exists(), self.stderr()
        return json.loads(self.export.read_text())


def cannonade_run(tmp_path, *args, env=None, cwd=None, timeout=90):
    """`cannonade run ARGS` as a real process with a database and an export of its own
    in ``tmp_path``: (the finished process, the export or None). No traceback, ever."""
    export = tmp_path / "summary.json"
    if export.exists():
        export.unlink()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cannonade",
            "run",
            *args,
            "--quiet",
            "--db",
            str(tmp_path / "runs.db"),
            "--summary-export",
            str(export),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
        cwd=cwd,
    )
    assert "Traceback (most recent call last)" not in r.stderr, r.stderr
    return r, (json.loads(export.read_text()) if export.exists() else None)
