"""go-lo's agent API, so a go-lo client works unchanged: ``POST /upload`` (multipart
field ``file``) → 200 ``{"binary": ID}``; ``POST /queue`` with a job
``{"name", "users", "duration", "binary"}`` → 201 ``{"queued": true}``. Errors are plain
text with status 400, worded as go-lo words them."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from cannonade.api.context import Api
from cannonade.api.runs import queue_run
from cannonade.service.plan import RunRequest


def golo_router(api: Api) -> APIRouter:
    r = APIRouter(tags=["go-lo"])

    @r.post("/upload", summary="go-lo: upload a load-test binary (multipart field 'file')")
    async def upload(request: Request) -> Response:
        form = await request.form()
        try:
            item = form.get("file")
            if item is None or isinstance(item, str):
                return PlainTextResponse("http: no such file", status_code=400)
            data = await item.read()
            filename = item.filename or "loadtest"
        finally:
            await form.close()
        try:
            record = api.save_bundle(filename, data)
        except HTTPException as e:
            return PlainTextResponse(str(e.detail), status_code=e.status_code)
        return JSONResponse({"binary": record.id})

    @r.post("/queue", summary="go-lo: queue a job {name, users, duration, binary}")
    async def queue(request: Request) -> Response:
        body = await request.body()
        try:
            job: Any = json.loads(body)
        except ValueError as e:
            return PlainTextResponse(str(e), status_code=400)
        if not isinstance(job, dict):
            return PlainTextResponse("a job is a JSON object", status_code=400)
        binary = job.get("binary")
        if not isinstance(binary, str):
            return PlainTextResponse(f"{binary} is an invalid binary", status_code=400)
        with api.store() as store:
            known = store.bundle(binary, with_data=False) is not None
        if not known:
            return PlainTextResponse(f"{binary} is an invalid binary", status_code=400)
        try:
            req = RunRequest(
                bundle=binary,
                name=_text(job.get("name")),
                users=_text(job.get("users")) or "1",
                duration=_seconds(job.get("duration")),
            )
            queue_run(api, req)
        except HTTPException as e:
            return PlainTextResponse(str(e.detail), status_code=e.status_code)
        except ValueError as e:  # pydantic's ValidationError
            return PlainTextResponse(str(e), status_code=400)
        return JSONResponse({"queued": True}, status_code=201)

    return r


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not a number of users or a name")
    return str(value)


def _seconds(value: object) -> str | None:
    # go-lo's job duration is a number of seconds; "30s" style text is taken as it is.
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"duration {value!r} is not a number of seconds")
    return f"{value:g}s" if isinstance(value, int | float) else value
