import io

import pytest
from rich.console import Console

from cannonade.model.aggregate import Aggregator
from cannonade.model.metrics import ITERATION_ERRORS, VUS, Key, SourceId
from cannonade.model.recorder import Recorder
from cannonade.report.live import (
    LiveProgress,
    LiveSnapshot,
    format_clock,
    progress_bar,
    render_line,
    snapshot_from,
)

T0 = 1_700_000_000


def snap(**kw: object) -> LiveSnapshot:
    base: dict[str, object] = {
        "elapsed": 12.0,
        "total": 30.0,
        "vus": 50,
        "rps": 4210.4,
        "requests": 50_000,
        "errors": 3,
        "p95": 0.0124,
        "phase": "running",
    }
    base.update(kw)
    return LiveSnapshot(**base)  # type: ignore[arg-type]


def test_render_line():
    assert render_line(snap()) == (
        "running  00:12/00:30  [████████░░░░░░░░░░░░]  vus 50  req/s 4,210  errors 3  p95 12.4ms"
    )


def test_render_line_without_a_set_length_or_samples():
    line = render_line(snap(total=None, p95=None, rps=0.0, elapsed=3725, phase="ramp-up"))
    assert line == "ramp-up  1:02:05  vus 50  req/s 0  errors 3  p95 -"


def test_render_line_small_rates_keep_a_decimal():
    assert "req/s 2.5 " in render_line(snap(rps=2.5))


def test_bar_and_clock():
    assert progress_bar(0.0, 4) == "░░░░"
    assert progress_bar(0.5, 4) == "██░░"
    assert progress_bar(2.0, 4) == "████"  # an overrun never draws past the end
    assert progress_bar(-1.0, 4) == "░░░░"
    assert format_clock(0) == "00:00"
    assert format_clock(61.9) == "01:01"
    assert format_clock(-5) == "00:00"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Closed:
    def isatty(self) -> bool:
        raise ValueError("I/O operation on closed file")


def test_should_enable():
    assert LiveProgress.should_enable(False, Tty())
    assert not LiveProgress.should_enable(True, Tty())
    assert not LiveProgress.should_enable(False, io.StringIO())
    assert not LiveProgress.should_enable(False, object())
    assert not LiveProgress.should_enable(False, Closed())


def test_disabled_progress_is_a_no_op(capsys: pytest.CaptureFixture[str]):
    with LiveProgress(enabled=False) as p:
        p.update(snap())
        assert p.last == snap()
    out, err = capsys.readouterr()
    assert out == ""
    assert err == ""


def test_enabled_progress_draws_each_update():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, color_system=None)
    with LiveProgress(console=console) as p:
        p.update(snap(errors=1))
        p.update(snap(errors=2, phase="stopping"))
    out = buf.getvalue()
    assert "errors 1" in out
    assert "stopping" in out
    assert "errors 2" in out


def build() -> Aggregator:
    agg = Aggregator()
    for c in range(2):
        rec = Recorder(SourceId("a", c))
        for s in range(3):
            slot = rec.request_slot("/x", "GET")
            slot.duration.extend([0.001 * (s + 1)] * 100)
            slot.status.extend([200] * 98 + [500, 0])
            rec.gauge(Key(VUS), 10 + s)
            if s == 1:
                rec.add(Key(ITERATION_ERRORS), 4)
            agg.add(rec.flush(T0 + s))
    return agg


def test_snapshot_from_a_second():
    agg = build()
    s = snapshot_from(agg, T0 + 1, elapsed=2.0, total=10.0)
    assert s.rps == 200.0
    assert s.p95 == pytest.approx(0.002, rel=1e-3)
    assert s.vus == 22  # both cannons
    # errors and requests count the run so far, not only that second
    assert s.requests == 600
    assert s.errors == 3 * 2 * 2 + 8
    assert (s.elapsed, s.total, s.phase) == (2.0, 10.0, "running")


def test_snapshot_from_a_second_without_data():
    agg = build()
    s = snapshot_from(agg, T0 + 99, elapsed=5.0, vus=7, phase="stopping")
    assert (s.rps, s.p95, s.vus, s.phase) == (0.0, None, 7, "stopping")
    empty = snapshot_from(Aggregator(), T0, elapsed=0.0)
    assert (empty.requests, empty.errors, empty.vus, empty.p95) == (0, 0, 0, None)


def test_progress_total_fills_in_for_snapshots_without_one():
    with LiveProgress(enabled=False, total=60.0) as p:
        p.update(snap(total=None))
        assert p.last is not None
        assert p.last.total == 60.0
        p.update(snap(total=30.0))
        assert p.last.total == 30.0
