"""The API app: ``create_app(api)`` builds a FastAPI app around one :class:`Api`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from cannonade import __version__
from cannonade.api.auth import BodyLimit, TokenGate
from cannonade.api.context import Api
from cannonade.api.dashboard import dashboard_router
from cannonade.api.golo import golo_router
from cannonade.api.runs import runs_router
from cannonade.service.board import Board

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def create_app(api: Api) -> Any:
    """The ASGI app: the token gate outside everything (no body is read for a request
    without it), then the body limit, then FastAPI."""
    app = FastAPI(
        title="cannonade HQ",
        version=__version__,
        description="Upload load tests, queue runs, follow them and fetch their results.",
    )
    app.include_router(golo_router(api))
    app.include_router(runs_router(api))
    app.include_router(dashboard_router(api))
    registry = CollectorRegistry(auto_describe=True)
    registry.register(LiveCollector(api.board, api))

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, Any]:
        live = api.board.live
        with api.store() as store:
            queued = len(store.queued())
        return {
            "ok": True,
            "agents": len(api.board.agents),
            "queued": queued,
            "running": live.run_id if live is not None else None,
        }

    @app.get("/metrics", tags=["service"], response_class=Response)
    def metrics() -> Response:
        """Prometheus text format: agents, the queue, and the live run's totals."""
        return Response(generate_latest(registry), media_type=PROMETHEUS_TEXT)

    fastapi_app: Any = app
    return TokenGate(BodyLimit(fastapi_app, api.config.max_upload), api.config.token)


class LiveCollector(Collector):
    """Reads the board at scrape time: nothing is kept in prometheus-client's globals."""

    def __init__(self, board: Board, api: Api) -> None:
        self.board = board
        self.api = api

    def collect(self) -> Any:
        agents = GaugeMetricFamily(
            "cannonade_agents", "Agents the HQ knows, by liveness", labels=["liveness"]
        )
        counts: dict[str, int] = {"alive": 0, "missing": 0}
        for a in self.board.agents:
            counts[a.liveness] = counts.get(a.liveness, 0) + 1
        for liveness, n in sorted(counts.items()):
            agents.add_metric([liveness], n)
        yield agents
        with self.api.store() as store:
            queued = len(store.queued())
        yield GaugeMetricFamily("cannonade_queue_length", "Runs waiting in the queue", queued)
        live = self.board.live
        labels = ["run_id"]
        run = [live.run_id] if live is not None else None
        t = live.totals if live is not None else {}
        for name, help_text, field in (
            ("cannonade_run_requests", "Requests made by the run in progress", "requests"),
            ("cannonade_run_errors", "Failed requests and iterations of the run", "errors"),
            ("cannonade_run_vus", "Active virtual users", "vus"),
            ("cannonade_run_requests_per_second", "Requests in the last second", "rps"),
            ("cannonade_run_p95_seconds", "p95 latency in the last second", "p95"),
            ("cannonade_run_elapsed_seconds", "Seconds since the run started", "elapsed"),
        ):
            family = GaugeMetricFamily(name, help_text, labels=labels)
            value = t.get(field)
            if run is not None and isinstance(value, int | float):
                family.add_metric(run, float(value))
            yield family
