"""The live dashboard: two self-contained pages and the server-sent events they follow.

``GET /`` (and ``/ui``) lists the runs and starts one from an uploaded bundle;
``GET /ui/runs/{id}`` follows one run through ``GET /api/v1/runs/{id}/events``.
The pages are static HTML with inline CSS and JS (no CDN: an HQ often runs where
nothing else is reachable); they read everything through ``/api/v1``, with whatever
credentials the browser used for the page (see docs/dashboard.md).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from functools import cache
from importlib import resources
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from cannonade.api.context import Api
from cannonade.storage import FINAL_STATUSES, RunRow

TICK = 1.0  # seconds between events: the HQ posts the board once a second too
EVENT_STREAM = "text/event-stream"


@cache
def page(name: str) -> str:
    """A template from ``cannonade/api/pages`` (package data), read once."""
    return resources.files("cannonade.api").joinpath("pages", name).read_text(encoding="utf-8")


def script_json(value: Any) -> str:
    """``value`` as JSON safe inside an inline ``<script>``: ``</script>`` or ``<!--`` in
    a string cannot end the script, whatever the value holds."""
    text = json.dumps(value)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def sse(event: str, data: dict[str, Any]) -> str:
    # json.dumps escapes newlines, so one ``data:`` line holds the whole payload.
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def dashboard_router(api: Api) -> APIRouter:
    r = APIRouter()

    def runs_page() -> HTMLResponse:
        return HTMLResponse(page("runs.html"), headers={"cache-control": "no-store"})

    r.add_api_route("/", runs_page, methods=["GET"], include_in_schema=False)
    r.add_api_route("/ui", runs_page, methods=["GET"], include_in_schema=False)

    @r.get("/ui/runs/{run_id}", include_in_schema=False)
    def run_page(run_id: str) -> HTMLResponse:
        row = _find(api, run_id)
        if row is None:
            raise HTTPException(404, f"no run {run_id!r}")
        html = page("run.html").replace('"__RUN_ID__"', script_json(row.id))
        return HTMLResponse(html, headers={"cache-control": "no-store"})

    # Left out of the OpenAPI schema: a stream lasts as long as its run, so a client
    # generated from the schema (or a fuzzer following it) would hang on it; it is
    # documented in docs/api.md and docs/dashboard.md instead.
    @r.get("/api/v1/runs/{run_id}/events", include_in_schema=False)
    async def run_events(run_id: str) -> StreamingResponse:
        """Server-sent events: a ``live`` event each second (the run's status, the live
        totals as ``GET /api/v1/runs/{id}`` shows them, and the agents), then one
        ``final`` event when the run is over, and the stream ends."""
        # The database is read on a worker thread, borrowed for a millisecond each
        # second: the stream itself is a coroutine and holds no thread while it waits.
        row = await run_in_threadpool(_find, api, run_id)
        if row is None:
            raise HTTPException(404, f"no run {run_id!r}")
        return StreamingResponse(
            _events(api, row.id),
            media_type=EVENT_STREAM,
            # no-transform / X-Accel-Buffering: a proxy must pass each event on at once.
            headers={"cache-control": "no-store, no-transform", "x-accel-buffering": "no"},
        )

    return r


async def _events(api: Api, run_id: str) -> AsyncIterator[str]:
    """Polls the board (and the run's row) once a second until the run is over. When the
    client goes away Starlette cancels this generator at its ``sleep``: nothing else
    has to notice."""
    # An EventSource reconnects by itself after an error; 2 s between tries spares an
    # HQ that is restarting.
    yield "retry: 2000\n\n"
    while True:
        row = await run_in_threadpool(_find, api, run_id)
        if row is None or row.status in FINAL_STATUSES:
            yield sse("final", _final(run_id, row))
            return
        live = api.board.live
        totals = (
            # The same dict as GET /api/v1/runs/{id}'s ``live``, so both show one number.
            {"phase": live.phase, "started": live.started, **live.totals}
            if live is not None and live.run_id == run_id
            else None
        )
        agents = [asdict(a) for a in api.board.agents]
        yield sse("live", {"id": run_id, "status": row.status, "live": totals, "agents": agents})
        await asyncio.sleep(TICK)


def _final(run_id: str, row: RunRow | None) -> dict[str, Any]:
    if row is None:  # deleted while followed
        return {"id": run_id, "status": "deleted", "verdict": None, "ended": None}
    return {"id": row.id, "status": row.status, "verdict": row.verdict, "ended": row.ended}


def _find(api: Api, run_id: str) -> RunRow | None:
    with api.store() as store:
        return store.run_row(run_id)
