"""The queue, run on the HQ's thread: the next queued run starts when enough agents are
ready, one run at a time. Everything about a run is in the database before it starts
(status ``queued`` and its request), so an HQ that dies loses no queued run, and
``cannonade hq`` marks the run it was in the middle of ``interrupted``, its data kept.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

from cannonade.config import options_duration
from cannonade.errors import CannonadeError
from cannonade.hq.run import Controller, RunSpec
from cannonade.hq.server import HQ, Interrupts, model_bound
from cannonade.launch.plan import Prepared, options_view, scenario_name, wire_options
from cannonade.model.aggregate import Aggregator
from cannonade.report.live import snapshot_from
from cannonade.report.stored import stored_summary
from cannonade.scenarios.archive import default_entry, is_archive, members, unpack
from cannonade.scenarios.bundle import Bundle
from cannonade.service.board import AgentView, Board, LiveView
from cannonade.service.plan import RunRequest, plan
from cannonade.storage import BundleRecord, QueuedRun, RunStatus, Store

LOOK_EVERY = 0.5  # seconds between looks at the queue when nothing wakes the HQ
WAIT_AGENTS = 60.0  # agents were ready when the run was taken; they get this to answer


class QueueRunner:
    def __init__(self, hq: HQ, store: Store, board: Board, spool: Path | None = None) -> None:
        self.hq = hq
        self.store = store
        self.board = board
        self.spool = spool or Path(tempfile.mkdtemp(prefix="cannonade-spool-"))
        self._looked = 0.0

    def serve(self, interrupts: Interrupts) -> None:
        """Until interrupted: keep the roster, post it, and run what is queued."""
        while interrupts.level == 0:
            self.hq.pump(0.1)
            self.hq.housekeeping()
            self._post_agents()
            job = self._next()
            if job is not None:
                self.run(job, interrupts)

    # -- the queue -----------------------------------------------------------------------
    def _next(self) -> QueuedRun | None:
        now = time.monotonic()
        if not self.board.queued.is_set() and now - self._looked < LOOK_EVERY:
            return None
        self.board.queued.clear()
        self._looked = now
        queue = self.store.queued()
        if not queue:
            return None
        first = queue[0]
        wanted = int(first.request.get("min_agents", 1))
        ready = [m for m in self.hq.roster.ready() if m.is_cannonade]
        return first if len(ready) >= wanted else None

    def run(self, job: QueuedRun, interrupts: Interrupts) -> None:
        """Take ``job`` off the queue and run it to its end (or fail it, with why)."""
        workdir = self.spool / job.run_id
        try:
            workdir.mkdir(parents=True, exist_ok=True)
            try:
                prepared, spec = self._prepare(job, workdir)
            except CannonadeError as e:
                self._fail(job.run_id, str(e))
                return
            self.store.take_queued(job.run_id)
            self._execute(prepared, spec, interrupts)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _prepare(self, job: QueuedRun, workdir: Path) -> tuple[Prepared, RunSpec]:
        req = RunRequest.model_validate(job.request)
        record = self.store.bundle(req.bundle)
        if record is None:
            raise CannonadeError(f"bundle {req.bundle} no longer exists")
        prepared, entry = prepare_bundle(req, record, workdir)
        wire = wire_options(prepared)
        if entry is not None:
            wire["entry"] = entry
        opts = prepared.options
        spec = RunSpec(
            run_id=job.run_id,
            bundle=prepared.bundle,
            options=wire,
            min_agents=req.min_agents,
            wait_agents=WAIT_AGENTS,
            bound=model_bound(options_duration(opts), opts.max_duration),
            graceful_stop=opts.graceful_stop,
        )
        return prepared, spec

    def _fail(self, run_id: str, why: str) -> None:
        now = time.time()
        self.store.take_queued(run_id)
        self.store.event(run_id, now, "error", why)
        self.store.set_status(run_id, RunStatus.FAILED, at=now, ended=now)

    def _execute(self, prepared: Prepared, spec: RunSpec, interrupts: Interrupts) -> None:
        mine = Interrupts()
        total = options_duration(prepared.options)
        board = self.board

        def progress(aggregator: Aggregator, run: Controller) -> None:
            if board.take_stop(spec.run_id):
                mine.level = max(mine.level, 1)
            mine.level = max(mine.level, interrupts.level)  # the HQ itself is told to stop
            self._post_agents()
            totals = {}
            if run.start_at is not None:
                now = time.time()
                snap = snapshot_from(
                    aggregator, int(now) - 1, elapsed=max(0.0, now - run.start_at), total=total
                )
                totals = dataclasses.asdict(snap)
            board.post_live(LiveView(spec.run_id, run.phase.value, run.start_at, totals))

        board.post_live(LiveView(spec.run_id, "waiting", None))
        try:
            outcome = self.hq.execute(
                spec,
                scenario=scenario_name(prepared),
                thresholds=prepared.expressions,
                options_view=options_view(prepared),
                interrupts=mine,
                progress=progress,
            )
        finally:
            board.post_live(None)
        stored = self.store.load(outcome.run_id, series_trends=frozenset())
        verdict = stored_summary(stored).verdict
        self.store.set_status(outcome.run_id, outcome.status, at=time.time(), verdict=verdict)

    def _post_agents(self) -> None:
        views = []
        for m in self.hq.roster.members.values():
            report = m.report
            views.append(
                AgentView(
                    m.uuid,
                    m.name,
                    m.status,
                    m.liveness.value,
                    m.cannons,
                    "cannonade" if report is not None else "turret",
                    report.hostname if report is not None else "",
                    m.first_seen,
                )
            )
        self.board.post_agents(tuple(views))


def prepare_bundle(
    req: RunRequest, record: BundleRecord, workdir: Path
) -> tuple[Prepared, str | None]:
    """A request checked against its bundle, unpacked in ``workdir``. Returns the plan
    and, for an archive, the entry file the agents run."""
    if record.kind != "archive":
        path = workdir / record.filename
        path.write_bytes(record.data)
        if record.kind == "exec":
            path.chmod(0o700)
        return plan(req, record.kind, path), None
    names = unpack(record.filename, record.data, workdir)
    entry = req.entry or default_entry(names)
    if entry is None:
        raise CannonadeError(
            "the archive has no single top-level scenario and no main.py: name one in entry"
        )
    if entry not in names:
        raise CannonadeError(f"the archive holds no file {entry!r}")
    kind = bundle_kind(entry, (workdir / entry).read_bytes())
    if kind == "exec":
        (workdir / entry).chmod(0o700)  # archives keep no file modes; the agent does this too
    prepared = plan(req, kind, workdir / entry)
    # The agents get the whole archive and unpack it; the plan came from its entry.
    archive = Bundle(record.filename, record.data, record.sha256)
    return dataclasses.replace(prepared, bundle=archive), entry


def bundle_kind(filename: str, data: bytes) -> str:
    """python, yaml, exec or archive, from the name (and, for programs, the content)."""
    lower = filename.lower()
    if is_archive(lower):
        members(filename, data)  # refuses a bad archive at upload, not at run time
        return "archive"
    if lower.endswith(".py"):
        return "python"
    if lower.endswith((".yaml", ".yml")):
        return "yaml"
    if data.startswith((b"\x7fELF", b"#!")):
        return "exec"
    raise CannonadeError(
        f"{filename!r}: a bundle is a .py or .yaml scenario, a .tar.gz/.tgz/.zip archive,"
        " or an executable (ELF or #! script)"
    )
