"""The agent's cannon processes: started, told apart, and stopped.

A cannon is ``python -m cannonade.agent.cannon`` talking to its agent over ipc; its
identity on the agent's ROUTER is unique per process (a generation number), so a new
pool never collides with cannons of the previous run that are still exiting.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass


@dataclass(slots=True)
class CannonProc:
    index: int
    proc: subprocess.Popen[bytes]
    identity: bytes  # unique per process: a new pool never collides with exiting cannons
    hello: bool = False
    loaded: bool = False
    done: bool = False
    exited: bool = False


def spawn(ipc_path: str, agent: str, index: int, identity: str) -> CannonProc:
    argv = [
        sys.executable,
        "-m",
        "cannonade.agent.cannon",
        "--ipc",
        ipc_path,
        "--agent",
        agent,
        "--index",
        str(index),
        "--identity",
        identity,
        "--parent",
        str(os.getpid()),
    ]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL)
    return CannonProc(index, proc, identity.encode())


def stop_idle(pool: list[CannonProc]) -> None:
    """An idle cannon holds nothing worth a goodbye: stop it now."""
    for c in pool:
        if c.proc.poll() is None:
            c.proc.terminate()
    reap(pool, wait=2.0)


def reap(cannons: list[CannonProc], wait: float) -> None:
    """Wait up to ``wait`` seconds in all for the cannons to exit; kill the rest."""
    deadline = time.monotonic() + wait
    for c in cannons:
        try:
            c.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.proc.kill()
            c.proc.wait()
        c.exited = True
