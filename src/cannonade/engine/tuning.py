"""Process-wide settings for a process that runs an engine, applied at its entry point."""

from __future__ import annotations

import asyncio
import gc


def tune_gc() -> None:
    # Every request allocates a few short-lived objects (futures, coroutines, the
    # response); with the default threshold of 700 the young-generation collector runs
    # every ~70 requests, about 2,000 instructions a request (callgrind). Collect less
    # often, and move everything alive at start (modules, the scenario) out of the
    # collector's way for good.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # plain asyncio still works, only slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
