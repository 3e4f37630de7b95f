"""``--out json=FILE`` and ``--out csv=DIR``: a stored run's per-second data for other tools.

Both are written after the run from the STORED run, so ``cannonade show RUN_ID --out ...``
writes the same files later. docs/outputs.md gives the exact shapes:

* json: k6's ``--out json`` line format (a ``Metric`` line, then ``Point`` lines), one
  point per metric, key and second; a trend point carries the second's aggregates, since
  cannonade keeps histograms, not samples.
* csv: Locust's ``--csv`` files and column names (``stats.csv``, ``stats_history.csv``,
  ``failures.csv``, ``exceptions.csv``) without the ``PREFIX_`` (the files go in a directory).
"""

from __future__ import annotations

import csv
import io
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from cannonade.errors import CannonadeError, ConfigError
from cannonade.model.aggregate import Aggregator
from cannonade.model.histogram import Histogram
from cannonade.model.metrics import (
    DATA_RECEIVED,
    HTTP_ERRORS,
    HTTP_REQ_DURATION,
    HTTP_REQ_FAILED,
    HTTP_REQS,
    HTTP_STATUS,
    VUS,
    Key,
    Kind,
)
from cannonade.model.recorder import FALSE, TRUE
from cannonade.model.summary import Summary
from cannonade.storage import Store, StoredRun

KINDS = ("json", "csv")


@dataclass(frozen=True, slots=True)
class Output:
    kind: str  # one of KINDS
    path: Path


def parse_outputs(values: Sequence[str] | None) -> tuple[Output, ...]:
    """``--out`` values (``KIND=PATH``, repeatable). Raises ConfigError naming the option,
    so a typo is reported before any load starts rather than after a long run."""
    out: list[Output] = []
    for value in values or ():
        kind, sep, path = value.partition("=")
        if not sep:
            raise ConfigError(f"--out {value!r} must look like KIND=PATH (json=FILE or csv=DIR)")
        if kind not in KINDS:
            raise ConfigError(f"--out {value!r}: unknown kind {kind!r} (expected json or csv)")
        if not path:
            raise ConfigError(f"--out {value!r}: no path after '='")
        out.append(Output(kind, Path(path)))
    return tuple(out)


class _EveryMetric(frozenset[str]):
    """A ``series_trends`` that holds every name: the JSON output needs each trend's
    per-second histograms, custom trends included, whose names are known only once the
    run is read. The default keeps only http_req_duration's, to keep memory small."""

    def __contains__(self, item: object) -> bool:
        return True


def load_for_outputs(store: Store, run_id: str) -> StoredRun:
    return store.load(run_id, series_trends=_EveryMetric())


def write_atomic(path: Path, chunks: bytes | Iterable[bytes]) -> None:
    """Replace ``path`` whole, as the summary export does: a reader (a CI step polling
    for the file) never sees half of it. Chunks are streamed: a long run's JSON lines
    need not fit in memory twice."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.writelines([chunks] if isinstance(chunks, bytes) else chunks)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make the file its writer's only
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- json -------------------------------------------------------------------------------------

TREND_POINT_PERCENTILES = (50.0, 90.0, 95.0, 99.0)


def _rfc3339(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tags(key: Key) -> dict[str, str]:
    tags = {"name": key.name, "method": key.method}
    if key.metric == HTTP_STATUS:
        tags["status"] = key.tag
    elif key.metric == HTTP_ERRORS:
        tags["error"] = key.tag
    elif key.tag not in ("", TRUE, FALSE):
        tags["tag"] = key.tag
    # Empty values say nothing; k6 leaves out tags that do not apply too.
    return {k: v for k, v in tags.items() if v}


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 6)  # µs-exact histograms; no float noise past that


def _trend_data(h: Histogram) -> dict[str, object]:
    avg = _ms(h.mean)
    data: dict[str, object] = {"value": avg, "count": h.count, "avg": avg}
    data["min"], data["max"] = _ms(h.min), _ms(h.max)
    for q, v in zip(TREND_POINT_PERCENTILES, h.percentiles(TREND_POINT_PERCENTILES), strict=True):
        data[f"p({q:g})"] = _ms(v)
    return data


def json_lines(stored: StoredRun, thresholds: Mapping[str, Sequence[str]] = {}) -> Iterator[bytes]:
    """The lines of ``--out json``, second by second. ``thresholds`` (metric → conditions)
    goes into each Metric line, as k6 writes it."""
    agg = stored.aggregator
    declared: set[str] = set()

    def point(metric: str, kind: Kind, second: int, key: Key, data: Mapping[str, object]) -> bytes:
        head = b""
        if metric not in declared:
            declared.add(metric)
            meta = {
                "name": metric,
                "type": kind.value,
                "contains": "time" if kind is Kind.TREND else "default",
                "thresholds": list(thresholds.get(metric, ())),
                "submetrics": None,
            }
            head = orjson.dumps({"type": "Metric", "metric": metric, "data": meta}) + b"\n"
        data = {"time": _rfc3339(second), **data, "tags": _tags(key)}
        return head + orjson.dumps({"type": "Point", "metric": metric, "data": data}) + b"\n"

    for second in sorted(agg.series):
        p = agg.series[second]
        for key in sorted(p.trends):
            h = p.trends[key]
            if h.count:
                yield point(key.metric, Kind.TREND, second, key, _trend_data(h))
        rates: dict[Key, list[float]] = {}
        for key in sorted(p.counters):
            n = p.counters[key]
            if agg.kinds.get(key.metric) is Kind.RATE and key.tag in (TRUE, FALSE):
                # A rate is stored as two counters; a reader wants one point with both.
                pf = rates.setdefault(key._replace(tag=""), [0.0, 0.0])
                pf[0 if key.tag == TRUE else 1] += n
            else:
                yield point(key.metric, Kind.COUNTER, second, key, {"value": n})
        for key, (trues, falses) in sorted(rates.items()):
            total = trues + falses
            data = {"value": trues / total if total else None, "passes": trues, "fails": falses}
            yield point(key.metric, Kind.RATE, second, key, data)
        gauges = p.gauges
        for key in sorted(gauges):
            yield point(key.metric, Kind.GAUGE, second, key, {"value": gauges[key]})


def write_json(stored: StoredRun, summary: Summary, path: Path) -> None:
    thresholds: dict[str, list[str]] = {}
    for r in summary.thresholds:
        thresholds.setdefault(r.threshold.metric, []).append(r.threshold.condition)
    write_atomic(path, json_lines(stored, thresholds))


# -- csv --------------------------------------------------------------------------------------

PERCENTILES = (50.0, 66.0, 75.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.9, 99.99, 100.0)
PERCENTILE_COLUMNS = tuple(f"{q:g}%" for q in PERCENTILES)
STATS_COLUMNS = (
    "Type", "Name", "Request Count", "Failure Count", "Median Response Time",
    "Average Response Time", "Min Response Time", "Max Response Time", "Average Content Size",
    "Requests/s", "Failures/s", *PERCENTILE_COLUMNS,
)  # fmt: skip
HISTORY_COLUMNS = (
    "Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", *PERCENTILE_COLUMNS,
    "Total Request Count", "Total Failure Count", "Total Median Response Time",
    "Total Average Response Time", "Total Min Response Time", "Total Max Response Time",
    "Total Average Content Size",
)  # fmt: skip
FAILURES_COLUMNS = ("Method", "Name", "Error", "Occurrences")
EXCEPTIONS_COLUMNS = ("Count", "Message", "Traceback", "Nodes")
AGGREGATED = "Aggregated"  # Locust's name for the all-requests row

Pair = tuple[str, str]  # (name, method); Locust sorts its entries by name, then method


@dataclass(slots=True)
class _Entry:
    """One request name's (or all requests') numbers, as Locust's StatsEntry has them."""

    requests: float = 0.0
    failures: float = 0.0
    received: float = 0.0
    hist: Histogram | None = None

    def add(self, requests: float, failures: float, received: float, h: Histogram | None) -> None:
        self.requests += requests
        self.failures += failures
        self.received += received
        if h is not None and h.count:
            if self.hist is None:
                self.hist = Histogram()
            self.hist.merge(h)

    def times(self) -> list[object]:
        """Median, average, min, max (ms), average content size. Locust writes 0 for a
        missing min and average; it has no request without a time, we might (a plugin's
        count), so 0 is what an empty entry gets here too."""
        h = self.hist
        size = self.received / self.requests if self.requests else 0
        if h is None:
            return [0, 0, 0, 0, _n(size)]
        return [_ms(h.percentile(50)), _ms(h.mean), _ms(h.min), _ms(h.max), _n(size)]

    def percentiles(self) -> list[object]:
        if self.hist is None:
            return ["N/A"] * len(PERCENTILES)  # as Locust writes an entry without requests
        return [_ms(v) for v in self.hist.percentiles(PERCENTILES)]


def _n(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(x, 6)


def _entries(counters: Mapping[Key, float], trends: Mapping[Key, Histogram]) -> dict[Pair, _Entry]:
    """Per (name, method) entries from one second's (or the run's) counters and trends."""
    out: dict[Pair, _Entry] = {}
    for key, n in counters.items():
        pair = (key.name, key.method)
        if key.metric == HTTP_REQS:
            out.setdefault(pair, _Entry()).add(n, 0.0, 0.0, None)
        elif key.metric == HTTP_REQ_FAILED and key.tag == TRUE:
            out.setdefault(pair, _Entry()).add(0.0, n, 0.0, None)
    for key, n in counters.items():
        if key.metric == DATA_RECEIVED and (key.name, key.method) in out:
            out[(key.name, key.method)].add(0.0, 0.0, n, None)
    for key, h in trends.items():
        if key.metric == HTTP_REQ_DURATION:
            out.setdefault((key.name, key.method), _Entry()).add(0.0, 0.0, 0.0, h)
    return out


def _total(entries: Mapping[Pair, _Entry]) -> _Entry:
    total = _Entry()
    for e in entries.values():
        total.add(e.requests, e.failures, e.received, e.hist)
    return total


def _csv(rows: Iterator[Sequence[object]] | list[Sequence[object]], head: Sequence[str]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(head)
    w.writerows(rows)
    return out.getvalue().encode()


def stats_rows(agg: Aggregator, duration: float) -> list[Sequence[object]]:
    """A row per (name, method), then the Aggregated row: Type "", Name "Aggregated"."""
    entries = _entries(agg.counters, agg.trends)

    def per_s(n: float) -> float | int:
        return _n(n / duration) if duration > 0 else 0

    labelled = [((method, name), e) for (name, method), e in sorted(entries.items())]
    labelled.append((("", AGGREGATED), _total(entries)))
    return [
        [*label, _n(e.requests), _n(e.failures), *e.times(),
         per_s(e.requests), per_s(e.failures), *e.percentiles()]
        for label, e in labelled
    ]  # fmt: skip


def history_rows(agg: Aggregator) -> Iterator[Sequence[object]]:
    """Per second: a row per request name that had requests in it, then the Aggregated
    row (every second, as Locust writes it). The window is that one second; the Total
    columns are cumulative up to its end."""
    running: dict[Pair, _Entry] = {}
    everything = _Entry()
    for second in sorted(agg.series):
        p = agg.series[second]
        now = _entries(p.counters, p.trends)
        users = _n(sum(v for k, v in p.gauges.items() if k.metric == VUS))
        rows: list[tuple[tuple[str, str], _Entry, _Entry]] = []
        for pair, e in sorted(now.items()):
            whole = running.setdefault(pair, _Entry())
            whole.add(e.requests, e.failures, e.received, e.hist)
            rows.append(((pair[1], pair[0]), e, whole))
        this = _total(now)
        everything.add(this.requests, this.failures, this.received, this.hist)
        rows.append((("", AGGREGATED), this, everything))
        for label, e, whole in rows:
            yield [second, users, *label, _n(e.requests), _n(e.failures), *e.percentiles(),
                   _n(whole.requests), _n(whole.failures), *whole.times()]  # fmt: skip


def failure_rows(agg: Aggregator) -> list[Sequence[object]]:
    """Locust records a failure per request with its exception text; cannonade counts a
    failed request by status code or transport error kind, so that is the Error here."""
    counts: dict[tuple[str, str, str], float] = {}
    explained: dict[Pair, float] = {}
    for key, n in agg.counters.items():
        pair = (key.name, key.method)
        if key.metric == HTTP_STATUS and key.tag.isdigit() and int(key.tag) >= 400:
            error = f"HTTP {key.tag}"
        elif key.metric == HTTP_ERRORS:
            error = key.tag or "transport error"
        else:
            continue
        counts[(key.method, key.name, error)] = counts.get((key.method, key.name, error), 0) + n
        explained[pair] = explained.get(pair, 0.0) + n
    for key, n in agg.counters.items():
        if key.metric == HTTP_REQ_FAILED and key.tag == TRUE:
            # Failed without a failing status or a transport error: a plan's assertion.
            rest = n - explained.get((key.name, key.method), 0.0)
            if rest > 0:
                counts[(key.method, key.name, "assertion failed")] = rest
    return [[m, name, err, _n(n)] for (m, name, err), n in sorted(counts.items())]


def exception_rows(agg: Aggregator) -> list[Sequence[object]]:
    """Errors raised in scenarios (not tied to a request): Locust's exceptions.csv. One
    run's errors are merged over every agent, so Nodes stays empty."""
    groups = sorted(agg.errors.values(), key=lambda e: (-e.count, e.kind, e.message))
    return [[g.count, f"{g.kind}: {g.message}" if g.message else g.kind, g.sample, ""]
            for g in groups]  # fmt: skip


def write_csv(stored: StoredRun, summary: Summary, directory: Path) -> None:
    agg = stored.aggregator
    directory.mkdir(parents=True, exist_ok=True)
    stats = stats_rows(agg, summary.info.duration)
    write_atomic(directory / "stats.csv", _csv(stats, STATS_COLUMNS))
    write_atomic(directory / "stats_history.csv", _csv(history_rows(agg), HISTORY_COLUMNS))
    write_atomic(directory / "failures.csv", _csv(failure_rows(agg), FAILURES_COLUMNS))
    write_atomic(directory / "exceptions.csv", _csv(exception_rows(agg), EXCEPTIONS_COLUMNS))


# -- all of them ------------------------------------------------------------------------------


def write_outputs(
    stored: StoredRun, summary: Summary, outputs: Sequence[Output], junit: str | None
) -> list[Path]:
    """Every requested file; raises OSError. ``stored`` is best loaded with
    :func:`load_for_outputs` (the JSON output wants every trend's per-second data)."""
    from cannonade.report.junit import write_junit

    written: list[Path] = []
    for o in outputs:
        try:
            (write_json if o.kind == "json" else write_csv)(stored, summary, o.path)
        except OSError as e:  # name the path given, not the temporary file beside it
            raise OSError(e.errno, e.strerror, str(o.path)) from e
        written.append(o.path)
    if junit:
        try:
            write_junit(summary, Path(junit))
        except OSError as e:
            raise OSError(e.errno, e.strerror, junit) from e
        written.append(Path(junit))
    return written


def write_run_outputs(
    db: str | os.PathLike[str],
    run_id: str,
    outputs: Sequence[Output],
    junit: str | None,
    summary: Summary,
) -> bool:
    """The outputs at the end of ``cannonade run``, from the stored run, announced on
    stderr; False, with the reason on stderr, if one could not be written."""
    if not outputs and not junit:
        return True
    try:
        with Store.open(db, create=False) as store:
            paths = write_outputs(load_for_outputs(store, run_id), summary, outputs, junit)
    except CannonadeError as e:
        print(f"error: --out: {e}", file=sys.stderr)
        return False
    except OSError as e:
        print(f"error: --out/--junit {e.filename}: {e.strerror}", file=sys.stderr)
        return False
    for path in paths:
        print(f"output: {path}", file=sys.stderr)
    return True
