import pytest
from samples import sample_run

from cannonade.model.aggregate import Aggregator
from cannonade.model.metrics import CHECKS, DROPPED_ITERATIONS, Key, SourceId
from cannonade.model.recorder import Recorder
from cannonade.model.summary import RunInfo, compute_summary
from cannonade.model.thresholds import parse_thresholds
from cannonade.report.text import (
    format_bytes,
    format_duration,
    format_number,
    format_percent,
    format_rate,
    innermost_frame,
    render_summary,
)

T0 = 1_700_000_000
INFO = RunInfo(started=T0, ended=T0 + 2.0)
TB = (
    "Traceback (most recent call last):\n"
    '  File "cannonade/engine/vu.py", line 88, in iterate\n'
    "    await fn(vu)\n"
    '  File "scenario.py", line 12, in login\n'
    '    token = body["token"]\n'
    "KeyError: 'token'"
)


def build() -> Aggregator:
    """Two cannons, two seconds: /login 10 × 20 ms (one 500), /home 5 × 1 ms (one
    timeout), 6 iterations, two checks, vus 3 per cannon, one user error."""
    return sample_run(traceback=TB)


def section(text: str, title: str) -> str:
    """The lines of one █ section, title included, up to the next blank line pair."""
    lines = text.splitlines()
    start = lines.index(f"  █ {title}")
    end = start + 2
    while end < len(lines) and lines[end].strip():
        end += 1
    return "\n".join(lines[start:end])


THRESHOLDS = {
    "http_req_duration": ["p(95)<200", "max<10"],
    "http_req_failed": "rate<0.5",
    "http_req_duration{name:/home}": "p(95)<5",
    "nothing": "avg<1",
}


@pytest.fixture
def text() -> str:
    return render_summary(compute_summary(build(), INFO, parse_thresholds(THRESHOLDS)))


def test_total_results_layout(text: str):
    assert section(text, "TOTAL RESULTS") == "\n".join(
        [
            "  █ TOTAL RESULTS",
            "",
            "    checks.........................: 75.00% ✓ 6      ✗ 2",
            "    data_received..................: 100 kB 50 kB/s",
            "    data_sent......................: 4.0 kB 2.0 kB/s",
            "    http_req_duration..............: avg=13.7ms min=1ms med=20ms max=20ms"
            " p(90)=20ms p(95)=20ms p(99)=20ms",
            "      { name:/home }...............: avg=1ms    min=1ms med=1ms  max=1ms "
            " p(90)=1ms  p(95)=1ms  p(99)=1ms",
            "    http_req_failed................: 13.33% ✓ 8      ✗ 52",
            "    http_reqs......................: 60     30/s",
            "    iterations.....................: 24     12/s",
            "    vus............................: 6      min=6    max=6",
        ]
    )


def test_thresholds_section(text: str):
    assert section(text, "THRESHOLDS") == "\n".join(
        [
            "  █ THRESHOLDS",
            "",
            "    http_req_duration",
            "    ✓ 'p(95)<200' p(95)=20ms",
            "    ✗ 'max<10' max=20ms",
        ]
    )
    assert "    http_req_failed\n    ✓ 'rate<0.5' rate=13.33%\n" in text
    assert "    http_req_duration{name:/home}\n    ✓ 'p(95)<5' p(95)=1ms\n" in text
    assert "    nothing\n    ✗ 'avg<1' no samples\n" in text


def test_checks_section(text: str):
    assert section(text, "CHECKS") == "\n".join(
        [
            "  █ CHECKS",
            "",
            "    ✗ body has token",
            "     ↳  50% — ✓ 2 / ✗ 2",
            "    ✓ status is 200",
        ]
    )


def test_requests_table(text: str):
    assert section(text, "REQUESTS") == "\n".join(
        [
            "  █ REQUESTS",
            "",
            "    name          method  count  fail  rps   avg   min   p50   p90   p95   p99   max",
            "    /home         GET        20     4   10   1ms   1ms   1ms   1ms   1ms   1ms   1ms",
            "    /login        POST       40     4   20  20ms  20ms  20ms  20ms  20ms  20ms  20ms",
        ]
    )


def test_errors_show_count_and_innermost_frame(text: str):
    assert section(text, "ERRORS") == "\n".join(
        [
            "  █ ERRORS",
            "",
            "    4× KeyError: 'token'",
            '       File "scenario.py", line 12, in login',
        ]
    )
    assert section(text, "TRANSPORT ERRORS") == "\n".join(
        ["  █ TRANSPORT ERRORS", "", "    timeout...: 4"]
    )


def test_verdict_lists_failed_thresholds_last(text: str):
    assert text.endswith(
        "  ✗ FAILED: 2 of 5 thresholds failed\n"
        "    ✗ http_req_duration 'max<10' max=20ms\n"
        "    ✗ nothing 'avg<1' no samples\n"
    )


def test_section_order(text: str):
    titles = [line.strip() for line in text.splitlines() if line.startswith("  █ ")]
    assert titles == [
        "█ THRESHOLDS",
        "█ TOTAL RESULTS",
        "█ CHECKS",
        "█ REQUESTS",
        "█ ERRORS",
        "█ TRANSPORT ERRORS",
    ]


def test_passed_and_no_threshold_verdicts():
    ok = render_summary(compute_summary(build(), INFO, parse_thresholds({"http_reqs": "count>1"})))
    assert ok.endswith("  ✓ PASSED: all 1 thresholds passed\n")
    none = render_summary(compute_summary(build(), INFO))
    assert none.endswith("  ✓ PASSED: no thresholds were set\n")
    assert "█ THRESHOLDS" not in none


def test_interrupted_and_warnings():
    agg = build()
    rec = Recorder(SourceId("agent-2", 3))
    rec.add(Key(DROPPED_ITERATIONS), 1500)
    agg.add(rec.flush(T0))  # seq 0
    for s in range(1, 7):
        delta = rec.flush(T0 + s)
        if s in (4, 6):
            agg.add(delta)  # 1-3 and 5 are lost
    text = render_summary(compute_summary(agg, RunInfo(T0, T0 + 12.5, interrupted=True)))
    assert (
        "  ⚠ LOST DATA: 4 interval report(s) never arrived (agent-2/3: 1-3, 5); totals undercount\n"
    ) in text
    assert "  ⚠ 1,500 iterations were dropped: the arrival rate outran the available VUs\n" in text
    assert text.endswith(
        "  ⚠ INTERRUPTED after 12.5s: results cover only what ran\n"
        "  ✓ PASSED: no thresholds were set\n"
    )


def test_empty_run_renders():
    text = render_summary(compute_summary(Aggregator(), RunInfo(T0, T0)))
    assert "no measurements were recorded" in text
    assert "█ REQUESTS" not in text
    assert "█ CHECKS" not in text
    assert "█ ERRORS" not in text


def test_top_ten_errors_then_a_tally():
    agg = Aggregator()
    rec = Recorder()
    for i in range(13):
        for _ in range(20 - i):
            rec.error(f"E{i:02d}", "boom", "")
    agg.add(rec.flush(T0))
    text = render_summary(compute_summary(agg, INFO))
    body = section(text, "ERRORS").splitlines()[2:]
    assert body[0] == "    20× E00: boom"
    assert body[9] == "    11× E09: boom"
    assert body[10] == "    … and 3 more kinds of error (27 errors)"
    assert len(body) == 11


def test_width_clips_free_text_but_not_metric_lines():
    agg = build()
    rec = Recorder()
    long_name = "/api/v1/" + "x" * 150
    slot = rec.request_slot(long_name, "GET")
    slot.duration.append(0.5)
    slot.status.append(200)
    rec.error("RuntimeError", "m" * 300 + "\nsecond line", "")
    rec.rate(CHECKS, "c" * 200, True)
    agg.add(rec.flush(T0))
    text = render_summary(compute_summary(agg, INFO), width=100)
    for title in ("REQUESTS", "ERRORS", "CHECKS"):
        for line in section(text, title).splitlines():
            assert len(line) <= 100, line
    assert "/api/v1/xx" in text
    assert "…" in text
    assert "second line" not in text  # cut, and never on a line of its own
    trend_line = next(line for line in text.splitlines() if "http_req_duration...." in line)
    assert len(trend_line) > 100


def test_output_is_deterministic():
    a = render_summary(compute_summary(build(), INFO, parse_thresholds(THRESHOLDS)))
    b = render_summary(compute_summary(build(), INFO, parse_thresholds(THRESHOLDS)))
    assert a == b


def test_bytes_rate_on_submetric_of_data():
    text = render_summary(
        compute_summary(build(), INFO, parse_thresholds({"data_received{name:/login}": "count>0"}))
    )
    assert "      { name:/login }..............: 100 kB 50 kB/s" in text


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "-"),
        (float("nan"), "-"),
        (0.0, "0s"),
        (0.0000005, "0.5µs"),
        (0.000012345, "12.3µs"),
        (0.000532, "532µs"),
        (0.0009997, "1ms"),
        (0.00101, "1.01ms"),
        (0.0112, "11.2ms"),
        (0.105, "105ms"),
        (0.9999, "1s"),
        (1.25, "1.25s"),
        (59.99, "1m0s"),
        (125.4, "2m5s"),
        (3725.0, "1h2m5s"),
        (-0.002, "-2ms"),
    ],
)
def test_format_duration(seconds: float | None, shown: str):
    assert format_duration(seconds) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.0123099, "12.3ms"),
        (0.19999, "199.99ms"),
        (0.0123156, "12.31ms"),
        (0.000999999, "999.99µs"),
    ],
)
def test_format_duration_precise_truncates(seconds: float, shown: str):
    assert format_duration(seconds, precise=True) == shown


@pytest.mark.parametrize(
    ("n", "shown"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (75_123, "75 kB"),
        (999_600, "1.0 MB"),
        (2_345_678, "2.3 MB"),
        (5e12, "5.0 TB"),
        (3e18, "3000 PB"),
    ],
)
def test_format_bytes_is_si(n: float, shown: str):
    assert format_bytes(n) == shown


def test_small_formatters():
    assert format_number(1300.0) == "1300"
    assert format_number(2.5) == "2.5"
    assert format_rate(43.174) == "43.2/s"
    assert format_rate(4210.4) == "4210/s"
    assert format_rate(None) == "-"
    assert format_percent(1.0) == "100.00%"
    assert format_percent(None) == "-"


def test_innermost_frame():
    assert innermost_frame(TB) == 'File "scenario.py", line 12, in login'
    assert innermost_frame("ValueError: x") == "ValueError: x"
    assert innermost_frame("") == ""
