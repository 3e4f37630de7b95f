"""``/api/v1``: bundles, runs (queue, list, get, stop, delete, report, summary, series)
and agents."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Query, UploadFile
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from pydantic import BaseModel

from cannonade.api.context import Api
from cannonade.errors import CannonadeError
from cannonade.launch.plan import new_run_id, options_view, scenario_name
from cannonade.report.export import summary_export
from cannonade.report.series import series_csv
from cannonade.report.stored import stored_summary
from cannonade.service.plan import RunRequest
from cannonade.service.worker import prepare_bundle
from cannonade.storage import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    BundleRecord,
    RunRow,
    RunStatus,
    Store,
)

MAX_PAGE = 500


class BundleOut(BaseModel):
    id: str
    sha256: str
    filename: str
    kind: str
    size: int
    created: float


class RunOut(BaseModel):
    id: str
    status: str
    scenario: str
    created: float
    started: float | None
    ended: float | None
    verdict: str | None
    thresholds: list[str]
    options: dict[str, Any]
    live: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None


class RunPage(BaseModel):
    runs: list[RunOut]
    offset: int
    limit: int
    next_offset: int | None


class Queued(BaseModel):
    id: str
    status: str


class AgentOut(BaseModel):
    uuid: str
    name: str
    status: str
    liveness: str
    cannons: int
    kind: str
    hostname: str
    first_seen: float


def queue_run(api: Api, req: RunRequest) -> str:
    """Check a request as ``cannonade run`` would and queue it; its run id. Raises
    HTTPException 400/403/404 with the reason."""
    with api.store() as store:
        record = store.bundle(req.bundle)
    if record is None:
        raise HTTPException(404, f"no bundle {req.bundle!r}: upload it first")
    if req.test_runner is not None:
        _need_exec(api, "test_runner (a command run on the agents)")
    with tempfile.TemporaryDirectory(prefix="cannonade-check-") as tmp:
        try:
            archived = record.kind == "archive"
            if archived and _entry_kind(record.filename, record.data, req) == "exec":
                _need_exec(api, "an executable entry in an archive")
            prepared, _entry = prepare_bundle(req, record, Path(tmp))
        except CannonadeError as e:
            raise HTTPException(400, str(e)) from None
    run_id = new_run_id()
    with api.store() as store:
        store.enqueue(
            run_id,
            scenario=req.name or scenario_name(prepared),
            scenario_sha256=record.sha256,
            options=options_view(prepared),
            thresholds=list(prepared.expressions),
            created=time.time(),
            request=req.model_dump(mode="json"),
        )
    api.board.queued.set()
    return run_id


def _need_exec(api: Api, what: str) -> None:
    if not api.config.allow_exec:
        raise HTTPException(403, f"{what} needs an HQ started with --allow-exec")


def _entry_kind(filename: str, data: bytes, req: RunRequest) -> str:
    from cannonade.scenarios.archive import default_entry, members

    names = members(filename, data)
    entry = req.entry or default_entry(names) or ""
    return "exec" if entry and not entry.endswith((".py", ".yaml", ".yml")) else ""


def runs_router(api: Api) -> APIRouter:
    r = APIRouter(prefix="/api/v1")

    @r.post("/bundles", status_code=201, response_model=BundleOut, tags=["bundles"])
    async def upload_bundle(file: Annotated[UploadFile, File()]) -> BundleOut:
        """A Python or YAML scenario, an executable (with --allow-exec), or a .tar.gz,
        .tgz or .zip of several files."""
        data = await file.read()
        record = api.save_bundle(file.filename or "", data)
        return _bundle_out(record)

    @r.get("/bundles/{bundle_id}", response_model=BundleOut, tags=["bundles"])
    def get_bundle(bundle_id: str) -> BundleOut:
        with api.store() as store:
            record = store.bundle(bundle_id, with_data=False)
        if record is None:
            raise HTTPException(404, f"no bundle {bundle_id!r}")
        return _bundle_out(record)

    @r.post("/runs", status_code=201, response_model=Queued, tags=["runs"])
    def create_run(req: RunRequest) -> Queued:
        """Queue a run of an uploaded bundle; it starts when ``min_agents`` are ready."""
        return Queued(id=queue_run(api, req), status=RunStatus.QUEUED.value)

    @r.get("/runs", response_model=RunPage, tags=["runs"])
    def list_runs(
        status: Annotated[RunStatus | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    ) -> RunPage:
        with api.store() as store:
            rows = store.list_runs(limit + 1, status.value if status else None, offset)
        more = len(rows) > limit
        return RunPage(
            runs=[_run_out(api, row) for row in rows[:limit]],
            offset=offset,
            limit=limit,
            next_offset=offset + limit if more else None,
        )

    @r.get("/runs/{run_id}", response_model=RunOut, tags=["runs"])
    def get_run(run_id: str) -> RunOut:
        with api.store() as store:
            row = _row(store, run_id)
            out = _run_out(api, row)
            if row.status in FINAL_STATUSES:
                out.summary = _summary(store, row.id)
        return out

    @r.post("/runs/{run_id}/stop", status_code=202, response_model=Queued, tags=["runs"])
    def stop_run(run_id: str) -> Queued:
        """A queued run leaves the queue (aborted); a running one stops gracefully."""
        with api.store() as store:
            row = _row(store, run_id)
            if row.status == RunStatus.QUEUED and store.take_queued(row.id):
                now = time.time()
                store.set_status(row.id, RunStatus.ABORTED, at=now, ended=now)
                store.event(row.id, now, "stopped", "taken off the queue through the API")
                return Queued(id=row.id, status=RunStatus.ABORTED.value)
        if api.board.request_stop(row.id):
            return Queued(id=row.id, status=RunStatus.STOPPING.value)
        raise HTTPException(409, f"run {row.id} is {row.status}: nothing to stop")

    @r.delete("/runs/{run_id}", status_code=204, tags=["runs"])
    def delete_run(run_id: str) -> Response:
        """Delete a finished or queued run and everything stored for it."""
        with api.store() as store:
            row = _row(store, run_id)
            if row.status == RunStatus.QUEUED:
                store.take_queued(row.id)
                now = time.time()
                store.set_status(row.id, RunStatus.ABORTED, at=now, ended=now)
            live = api.board.live
            if (live is not None and live.run_id == row.id) or not store.delete_run(row.id):
                raise HTTPException(409, f"run {row.id} is in progress: stop it first")
        return Response(status_code=204)

    @r.get("/runs/{run_id}/summary", tags=["runs"])
    def run_summary(run_id: str) -> dict[str, Any]:
        """The k6-style summary export (as ``--summary-export`` writes it)."""
        with api.store() as store:
            row = _row(store, run_id)
            return _summary(store, row.id)

    @r.get("/runs/{run_id}/series.csv", response_class=PlainTextResponse, tags=["runs"])
    def run_series(run_id: str) -> PlainTextResponse:
        """One CSV row per second: requests, failures, VUs, bytes, latency percentiles."""
        with api.store() as store:
            row = _row(store, run_id)
            stored = store.load(row.id)
        return PlainTextResponse(series_csv(stored.aggregator), media_type="text/csv")

    @r.get("/runs/{run_id}/report", response_class=HTMLResponse, tags=["runs"])
    def run_report(run_id: str) -> HTMLResponse:
        """The run's self-contained HTML report."""
        from cannonade.report.html import render_stored_report

        with api.store() as store:
            row = _row(store, run_id)
            return HTMLResponse(render_stored_report(store, row.id))

    @r.get("/agents", response_model=list[AgentOut], tags=["agents"])
    def agents() -> list[AgentOut]:
        return [
            AgentOut(
                uuid=a.uuid,
                name=a.name,
                status=a.status,
                liveness=a.liveness,
                cannons=a.cannons,
                kind=a.kind,
                hostname=a.hostname,
                first_seen=a.first_seen,
            )
            for a in api.board.agents
        ]

    return r


def _row(store: Store, run_id: str) -> RunRow:
    row = store.run_row(run_id)
    if row is None:
        raise HTTPException(404, f"no run {run_id!r}")
    return row


def _summary(store: Store, run_id: str) -> dict[str, Any]:
    try:
        summary = stored_summary(store.load(run_id, series_trends=frozenset()))
    except CannonadeError as e:
        raise HTTPException(500, f"the stored run cannot be summarised: {e}") from None
    return summary_export(summary)


def _run_out(api: Api, row: RunRow) -> RunOut:
    live = api.board.live
    return RunOut(
        id=row.id,
        status=row.status,
        scenario=row.scenario,
        created=row.created,
        started=row.started,
        ended=row.ended,
        verdict=row.verdict,
        thresholds=list(row.thresholds),
        options=dict(row.options),
        live=(
            {"phase": live.phase, "started": live.started, **live.totals}
            if live is not None and live.run_id == row.id and row.status in _LIVE
            else None
        ),
    )


_LIVE = {s.value for s in ACTIVE_STATUSES}


def _bundle_out(record: BundleRecord) -> BundleOut:
    return BundleOut(
        id=record.id,
        sha256=record.sha256,
        filename=record.filename,
        kind=record.kind,
        size=record.size,
        created=record.created,
    )
