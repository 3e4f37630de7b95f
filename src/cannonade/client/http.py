"""``HQClient``: the ``/api/v1`` endpoints as typed methods over one ``httpx.Client``.

Every failure — an error status, an answer that is not what the API sends, an HQ that
cannot be reached — comes out as one :class:`ApiError`, so a command line can print
``error: <detail>`` and never a traceback.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import httpx

# Queuing a run imports its scenario in a child process on the HQ (up to 30 s there),
# so a request may legitimately take that long; connecting may not.
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
UNREACHABLE = 0  # ApiError.status when no HTTP answer came at all
UNEXPECTED = 502  # ApiError.status when an answer came but not in the API's shape

T = TypeVar("T")


class ApiError(Exception):
    """The API refused (``status`` is its HTTP status, ``detail`` its reason), or
    could not be reached (``status`` 0)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Bundle:
    id: str
    sha256: str
    filename: str
    kind: str
    size: int


@dataclass(frozen=True, slots=True)
class RemoteRun:
    id: str
    status: str
    scenario: str
    created: float
    started: float | None
    ended: float | None
    verdict: str | None
    thresholds: tuple[str, ...]
    options: dict[str, Any]
    live: dict[str, Any] | None
    summary: dict[str, Any] | None  # the k6-style export, once the run is final

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RemoteRun:
        return cls(
            id=str(d["id"]),
            status=str(d["status"]),
            scenario=str(d.get("scenario") or ""),
            created=float(d["created"]),
            started=_float(d.get("started")),
            ended=_float(d.get("ended")),
            verdict=d.get("verdict"),
            thresholds=tuple(str(t) for t in d.get("thresholds") or ()),
            options=dict(d.get("options") or {}),
            live=d.get("live"),
            summary=d.get("summary"),
        )


@dataclass(frozen=True, slots=True)
class RunPage:
    runs: tuple[RemoteRun, ...]
    next_offset: int | None


def _float(x: object) -> float | None:
    if x is None:
        return None
    if not isinstance(x, int | float | str):
        raise TypeError(f"expected a number, got {x!r}")
    return float(x)


class HQClient:
    """One HQ's API. Use as a context manager (it holds a connection pool)."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``transport`` replaces the network (tests: an app in-process, or a mock)."""
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> HQClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- endpoints -------------------------------------------------------------------------
    def upload_bundle(self, filename: str, data: bytes) -> Bundle:
        d = self._json("POST", "/api/v1/bundles", files={"file": (filename, data)})
        return _parsed(
            lambda: Bundle(
                str(d["id"]), str(d["sha256"]), str(d["filename"]), str(d["kind"]), int(d["size"])
            )
        )

    def create_run(self, request: dict[str, Any]) -> str:
        """Queue a run (a RunRequest as JSON); its id."""
        d = self._json("POST", "/api/v1/runs", json=request)
        return _parsed(lambda: str(d["id"]))

    def get_run(self, run_id: str) -> RemoteRun:
        d = self._json("GET", f"/api/v1/runs/{_quote(run_id)}")
        return _parsed(lambda: RemoteRun.from_json(d))

    def list_runs(self, status: str | None = None, limit: int = 50, offset: int = 0) -> RunPage:
        params: dict[str, str | int] = {"limit": limit, "offset": offset}
        if status is not None:
            params["status"] = status
        d = self._json("GET", "/api/v1/runs", params=params)
        return _parsed(
            lambda: RunPage(
                tuple(RemoteRun.from_json(r) for r in d["runs"]),
                None if d.get("next_offset") is None else int(d["next_offset"]),
            )
        )

    def stop_run(self, run_id: str) -> str:
        """Ask for a graceful stop (a queued run is aborted); the run's new status."""
        d = self._json("POST", f"/api/v1/runs/{_quote(run_id)}/stop")
        return _parsed(lambda: str(d["status"]))

    def report(self, run_id: str) -> str:
        """The run's self-contained HTML report."""
        return self._request("GET", f"/api/v1/runs/{_quote(run_id)}/report").text

    # -- plumbing --------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kw)
        except httpx.TimeoutException:
            why = f"the HQ at {self.base_url} did not answer in time"
            raise ApiError(UNREACHABLE, why) from None
        except (httpx.HTTPError, httpx.InvalidURL) as e:
            why = str(e) or type(e).__name__
            raise ApiError(UNREACHABLE, f"cannot reach the HQ at {self.base_url}: {why}") from None
        if response.is_error:
            raise ApiError(response.status_code, error_detail(response))
        return response

    def _json(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        response = self._request(method, path, **kw)
        try:
            d = response.json()
        except ValueError:
            d = None
        if not isinstance(d, dict):
            raise ApiError(response.status_code, f"{path}: the answer is not a JSON object")
        return d


def _parsed(make: Callable[[], T]) -> T:
    """``make()``, with a missing or mistyped field reported as the API's fault."""
    try:
        return make()
    except (KeyError, TypeError, ValueError) as e:
        raise ApiError(UNEXPECTED, f"the API answered in an unexpected shape ({e!r})") from None


def _quote(segment: str) -> str:
    # A run id typed by a user becomes one path segment, whatever it holds.
    return urllib.parse.quote(segment, safe="")


def error_detail(response: httpx.Response) -> str:
    """The reason an error answer gives: FastAPI's ``detail`` (a string, or a list of
    validation errors), else the text of the body, else the status phrase."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, str) and detail:
        return detail
    if isinstance(detail, list) and detail:
        return "; ".join(_validation_error(item) for item in detail)
    text = response.text.strip()
    if text and len(text) <= 500 and "<" not in text:
        return text
    return f"{response.status_code} {response.reason_phrase}".strip()


def _validation_error(item: object) -> str:
    if not isinstance(item, dict):
        return str(item)
    # loc is ("body", "users") for a RunRequest field: the field is what the user set.
    loc = [str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path")]
    msg = str(item.get("msg", "invalid"))
    return f"{'.'.join(loc)}: {msg}" if loc else msg
