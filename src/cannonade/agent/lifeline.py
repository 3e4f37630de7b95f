"""Child processes that cannot outlive their parent.

Linux's ``PR_SET_PDEATHSIG`` has the kernel kill the child when its parent dies, even
by ``kill -9``; it is set in the child itself (``preexec_fn`` is unsafe in a process
that has threads) and then the parent is checked once, to close the window where the
parent died before the call. Elsewhere a watcher thread polls ``getppid``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1


def die_with_parent(expected_parent: int) -> None:
    """Be killed when ``expected_parent`` exits; exit now if it already has."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            _watch(expected_parent)
    else:
        _watch(expected_parent)
    if os.getppid() != expected_parent:
        os._exit(1)


def _watch(parent: int) -> None:
    def loop() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=loop, name="lifeline", daemon=True).start()
