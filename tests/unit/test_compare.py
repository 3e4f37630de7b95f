"""`cannonade compare`: two stored runs side by side, and --fail-if conditions that gate
on a regression, from the parsed expression to the exit code."""

import json

import pytest

from cannonade.cli.main import main
from cannonade.errors import ConfigError
from cannonade.model.metrics import ITERATIONS, Key, SourceId
from cannonade.model.recorder import Recorder
from cannonade.model.regress import FailIfError, check, parse_condition
from cannonade.report.compare import Change, compare, comparison_json
from cannonade.report.compare_text import render_comparison
from cannonade.report.stored import stored_summary
from cannonade.storage import Store

T0 = 1_700_000_000
SECONDS = 2

# name -> (method, duration in s, requests per second, failures per second)
BASE = {"/login": ("POST", 0.020, 10, 1), "/home": ("GET", 0.001, 5, 0)}
SLOW = {"/login": ("POST", 0.030, 8, 1), "/home": ("GET", 0.001, 5, 0)}


def store_run(store, run_id, requests, *, iterations=6, created=T0):
    """A finished run of SECONDS seconds, stored as the HQ stores one."""
    store.create_run(
        run_id, scenario="s.py", scenario_sha256="0" * 64, options={}, thresholds=(),
        created=created,
    )  # fmt: skip
    rec = Recorder(SourceId("agent-1", 0))
    w = store.writer(run_id)
    for s in range(SECONDS):
        for key, (method, duration, n, failures) in requests.items():
            name = key[0] if isinstance(key, tuple) else key  # a tuple: one name, two methods
            slot = rec.request_slot(name, method)
            slot.duration.extend([duration] * n)
            slot.status.extend([200] * (n - failures) + [500] * failures)
        if iterations:
            rec.add(Key(ITERATIONS), iterations)
        w.add(rec.flush(created + s, final=s == SECONDS - 1))
        w.flush()
    store.set_status(run_id, "finished", at=created + 3, started=created, ended=created + SECONDS)


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "runs.db"
    with Store.open(path) as store:
        store_run(store, "aaa111", BASE)
        store_run(store, "bbb222", SLOW, created=T0 + 100)
        store_run(
            store,
            "ccc333",
            {"/home": ("GET", 0.002, 5, 1), "/new": ("GET", 0.001, 1, 0)},
            iterations=0,
            created=T0 + 200,
        )
    return path


def summaries(db, *ids):
    with Store.open(db, create=False) as store:
        return [stored_summary(store.load(i, series_trends=frozenset())) for i in ids]


def by_quantity(changes):
    return {ch.quantity: ch for ch in changes}


# -- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "quantity", "increase", "bound", "relative", "name", "method"),
    [
        ("p95 +10%", "p95", True, 10.0, True, None, None),
        ("p99 +5ms", "p99", True, 0.005, False, None, None),
        ("p50 +250us", "p50", True, 0.00025, False, None, None),
        ("p99+1.5s", "p99", True, 1.5, False, None, None),
        ("rps -5%", "rps", False, 5.0, True, None, None),
        ("rps -20/s", "rps", False, 20.0, False, None, None),
        ("error_rate +0.01", "error_rate", True, 0.01, False, None, None),
        ("iteration_rate -.5", "iteration_rate", False, 0.5, False, None, None),
        ("p95{name:/login} +10%", "p95", True, 10.0, True, "/login", None),
        ("p95 { name: /login , method:POST } + 10 %", "p95", True, 10.0, True, "/login", "POST"),
        ("rps{name:'/a,b}'} -1%", "rps", False, 1.0, True, "/a,b}", None),
    ],
)
def test_every_form_parses(text, quantity, increase, bound, relative, name, method):
    c = parse_condition(text)
    assert (c.source, c.quantity, c.increase, c.relative, c.name, c.method) == (
        text, quantity, increase, relative, name, method
    )  # fmt: skip
    assert c.bound == pytest.approx(bound)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "expected a quantity"),
        ("p96 +10%", "unknown quantity 'p96'"),
        ("p95 10%", "expected a signed bound"),
        ("p95 +", "expected a signed bound"),
        ("p95 +10% and more", "expected a signed bound"),
        ("p95 +10", "p95 needs a unit (us, ms or s) or '%'"),
        ("p95 +10/s", "'/s' is not a duration unit"),
        ("rps +5ms", "unit 'ms' does not apply to rps (per second)"),
        ("error_rate +5ms", "unit 'ms' does not apply to error_rate (fraction)"),
        ("iteration_rate{name:/x} +1%", "iteration_rate is run-wide"),
        ("p95{name:/x +10%", "unclosed '{'"),
        ("p95{} +10%", "filter '' has no ':'"),
        ("p95{nam:/x} +10%", "unknown filter 'nam'"),
        ("p95{name:} +10%", "filter 'name' has an empty value"),
        ("p95{name:/x,name:/y} +10%", "filter 'name' is given twice"),
        ("p95{method:GET} +10%", "a scope needs a name"),
    ],
)
def test_a_bad_expression_is_an_error_quoting_it(text, says):
    with pytest.raises(FailIfError) as e:
        parse_condition(text)
    assert str(e.value).startswith(f"--fail-if {text!r}: ")
    assert says in str(e.value)
    assert isinstance(e.value, ConfigError)  # so the CLI's error path catches it


# -- checking -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "a", "b", "passed"),
    [
        ("p95 +10%", 0.100, 0.110, True),  # exactly 10% more is not *more than* 10%
        ("p95 +10%", 0.100, 0.111, False),
        ("p95 +10%", 0.100, 0.050, True),  # faster is never a regression
        ("p99 +5ms", 0.020, 0.0249, True),
        ("p99 +5ms", 0.020, 0.0251, False),
        ("rps -5%", 100.0, 95.5, True),
        ("rps -5%", 100.0, 94.0, False),
        ("rps -5%", 100.0, 500.0, True),
        ("rps -10/s", 100.0, 89.0, False),
        ("error_rate +0.01", 0.02, 0.029, True),
        ("error_rate +0.01", 0.02, 0.031, False),
    ],
)
def test_check(text, a, b, passed):
    assert check(parse_condition(text), a, b).passed is passed


def test_a_zero_baseline_fails_a_relative_bound_only_when_it_got_worse():
    up = parse_condition("error_rate +50%")
    v = check(up, 0.0, 0.02)
    assert not v.passed
    assert "baseline is 0" in v.reason
    assert check(up, 0.0, 0.0).passed
    assert check(parse_condition("rps -5%"), 0.0, 0.0).passed
    assert check(parse_condition("rps -5%"), 0.0, 3.0).passed


def test_a_missing_value_fails_and_says_which_run():
    c = parse_condition("p95 +10%")
    assert check(c, None, 0.1).reason == "no value in run A"
    assert check(c, 0.1, None).reason == "no value in run B"
    assert check(c, None, None).reason == "no value in run A and B"
    assert not check(c, None, None).passed


def test_change_relative_is_none_from_zero():
    assert Change("rps", 0.0, 5.0).relative is None
    assert Change("rps", 0.0, 5.0).delta == 5.0
    assert Change("rps", None, 5.0).delta is None
    assert Change("rps", 10.0, 5.0).relative == -0.5


# -- comparing stored runs ------------------------------------------------------------------


def test_compare_overall_and_per_name(db):
    a, b = summaries(db, "aaa111", "bbb222")
    c = compare(a, b)
    overall = by_quantity(c.overall)
    assert overall["rps"].a == pytest.approx(15.0)  # 30 requests over 2 s
    assert overall["rps"].b == pytest.approx(13.0)
    assert overall["rps"].relative == pytest.approx(-2 / 15)
    assert overall["p99"].a == pytest.approx(0.020, rel=1e-3)
    assert overall["p99"].b == pytest.approx(0.030, rel=1e-3)
    assert overall["error_rate"].a == pytest.approx(2 / 30)
    assert overall["iteration_rate"].a == pytest.approx(6.0)
    assert [(r.name, r.method, r.status) for r in c.requests] == [
        ("/home", "GET", "both"),
        ("/login", "POST", "both"),
    ]
    login = by_quantity(c.requests[1].changes)
    assert login["p95"].relative == pytest.approx(0.5, rel=1e-3)
    assert login["rps"].a == pytest.approx(10.0)
    assert login["error_rate"].b == pytest.approx(1 / 8)
    assert c.passed  # no conditions


def test_names_added_and_removed(db):
    a, b = summaries(db, "aaa111", "ccc333")
    c = compare(a, b)
    assert [(r.name, r.status) for r in c.requests] == [
        ("/home", "both"),
        ("/login", "removed"),
        ("/new", "added"),
    ]
    login = by_quantity(c.requests[1].changes)
    assert login["p95"].b is None
    assert login["p95"].delta is None
    text = render_comparison(c)
    assert "added (only in B): GET /new" in text
    assert "removed (only in A): POST /login" in text


def test_zero_baselines_say_n_a(db):
    # /home had no failures in A and one per second in B; C ran no iterations.
    a, b = summaries(db, "aaa111", "ccc333")
    c = compare(b, a)  # C as the baseline: iteration_rate 0 -> 6/s
    overall = by_quantity(c.overall)
    assert overall["iteration_rate"].a == 0.0
    assert overall["iteration_rate"].relative is None
    home = by_quantity(compare(a, b).requests[0].changes)
    assert home["error_rate"].a == 0.0
    assert home["error_rate"].relative is None
    iteration_line = next(
        line for line in render_comparison(c).splitlines() if "iteration_rate" in line
    )
    assert iteration_line.split() == ["iteration_rate", "0/s", "6/s", "+6/s", "n/a"]
    assert comparison_json(c)["overall"]["iteration_rate"]["relative"] is None


def test_conditions_run_wide_and_scoped(db):
    a, b = summaries(db, "aaa111", "bbb222")
    conditions = [
        parse_condition(t)
        for t in (
            "p95 +10%",  # 20ms -> 30ms: fails
            "p95 +20ms",  # passes
            "rps -5%",  # 15/s -> 13/s: fails
            "error_rate +0.1",  # passes
            "p95{name:/home} +10%",  # unchanged: passes
            "p95{name:/login,method:POST} +10%",  # fails
            "p95{name:/nowhere} +10%",  # a typo must not pass
        )
    ]
    c = compare(a, b, conditions)
    got = [(r.condition.source, r.label, r.passed) for r in c.results]
    assert got == [
        ("p95 +10%", "p95", False),
        ("p95 +20ms", "p95", True),
        ("rps -5%", "rps", False),
        ("error_rate +0.1", "error_rate", True),
        ("p95{name:/home} +10%", "p95{name:/home}", True),
        ("p95{name:/login,method:POST} +10%", "p95{name:/login,method:POST}", False),
        ("p95{name:/nowhere} +10%", "p95{name:/nowhere}", False),
    ]
    assert c.results[-1].reason == "no such request in either run"
    assert not c.passed
    assert len(c.failed) == 4


def test_a_scoped_condition_on_a_removed_name_fails(db):
    a, b = summaries(db, "aaa111", "ccc333")
    c = compare(a, b, [parse_condition("p95{name:/login} +10%")])
    (r,) = c.results
    assert (r.passed, r.reason) == (False, "not in run B")


def test_a_scoped_condition_checks_every_method_of_the_name(tmp_path):
    path = tmp_path / "runs.db"
    with Store.open(path) as store:
        store_run(store, "a", {("/x", 1): ("GET", 0.010, 5, 0), ("/x", 2): ("PUT", 0.010, 5, 0)})
        store_run(store, "b", {("/x", 1): ("GET", 0.010, 5, 0), ("/x", 2): ("PUT", 0.020, 5, 0)})
    a, b = summaries(path, "a", "b")
    c = compare(a, b, [parse_condition("p95{name:/x} +10%")])
    assert [(r.label, r.passed) for r in c.results] == [
        ("p95{name:/x,method:GET}", True),
        ("p95{name:/x,method:PUT}", False),
    ]
    c = compare(a, b, [parse_condition("p95{name:/x,method:GET} +10%")])
    assert [(r.label, r.passed) for r in c.results] == [("p95{name:/x,method:GET}", True)]


def test_json_is_the_same_comparison(db):
    a, b = summaries(db, "aaa111", "ccc333")
    doc = comparison_json(compare(a, b, [parse_condition("p95 +1000%")]))
    json.dumps(doc)  # serialisable as is
    assert doc["a"]["run_id"] == "aaa111"
    assert doc["b"]["duration"] == SECONDS
    assert doc["overall"]["rps"]["a"] == pytest.approx(15.0)
    assert [(r["name"], r["status"]) for r in doc["requests"]] == [
        ("/home", "both"),
        ("/login", "removed"),
        ("/new", "added"),
    ]
    assert doc["requests"][1]["values"]["p95"]["b"] is None
    assert doc["conditions"][0]["passed"] is True
    assert doc["passed"] is True


# -- the command ----------------------------------------------------------------------------


def cli(capsys, *argv):
    code = main(["compare", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_command_exit_99_names_each_failed_condition_with_both_values(capsys, db):
    code, out, err = cli(
        capsys, "aaa", "bbb", "--db", str(db), "--fail-if", "p95 +10%", "--fail-if", "rps -50%"
    )
    assert (code, err) == (99, "")
    assert "✗ 'p95 +10%' p95: A 20ms, B 30ms (+10ms, +50.0%)" in out
    assert "✓ 'rps -50%' rps: A 15/s, B 13/s (-2/s, -13.3%)" in out
    assert out.rstrip().endswith("✗ FAILED: 1 of 2 conditions failed")
    assert "█ OVERALL" in out
    assert "█ REQUESTS" in out


def test_command_exit_0_with_a_loose_bound(capsys, db):
    code, out, _ = cli(capsys, "aaa111", "bbb222", "--db", str(db), "--fail-if", "p95 +100%")
    assert code == 0
    assert out.rstrip().endswith("✓ PASSED: all 1 conditions held")


def test_command_json(capsys, db):
    code, out, err = cli(capsys, "aaa", "bbb", "--db", str(db), "--json", "--fail-if", "p99 +5ms")
    assert code == 99
    doc = json.loads(out)
    assert doc["passed"] is False
    assert doc["conditions"][0]["measured"] == "p99"
    assert err.startswith("✗ 'p99 +5ms' p99: A 20ms, B 30ms")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("zzz", "bbb"), "error: no run 'zzz' in "),
        (("aaa", "bbb", "--fail-if", "p95 10%"), "error: --fail-if 'p95 10%': expected a signed"),
    ],
)
def test_command_errors_exit_1(capsys, db, argv, says):
    code, out, err = cli(capsys, *argv, "--db", str(db))
    assert (code, out) == (1, "")
    assert err.startswith(says)


def test_command_without_a_database_creates_none(capsys, tmp_path):
    path = tmp_path / "none.db"
    code, _, err = cli(capsys, "a", "b", "--db", str(path))
    assert code == 1
    assert err.startswith(f"error: no database at {path}")
    assert not path.exists()
