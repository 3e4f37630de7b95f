"""The plan format's pieces: positions, templates, the compiler's checks."""

import pytest

from cannonade.config import ArrivalRate, Cycles, RampingVus, SharedIterations
from cannonade.plans.compile import PlanInvalid, load_plan
from cannonade.plans.source import SourceError, load_yaml
from cannonade.plans.template import Scope, Structure, Template, TemplateError

FIXED = {"env": {"HOME": "/root"}, "vars": {"n": 3, "who": "ada"}, "secrets": {"pw": "s3"}}


def test_marks_name_line_and_column_of_values_and_keys():
    data, marks = load_yaml("a:\n  b: [1, {c: x}]\n", "f.yaml")
    assert data == {"a": {"b": [1, {"c": "x"}]}}
    assert marks.values[("a", "b", 1, "c")] == (2, 14)
    assert marks.keys[("a", "b")] == (2, 3)
    assert str(marks.at(("a", "b", 1, "zz"), "boom")) == "f.yaml:2:10: boom"


def test_duplicate_keys_and_bad_yaml_are_errors():
    with pytest.raises(SourceError, match=r"f.yaml:2:1: duplicate key 'a'"):
        load_yaml("a: 1\na: 2\n", "f.yaml")
    with pytest.raises(SourceError, match=r"f.yaml:2:1: not valid YAML"):
        load_yaml("a: [1, 2\n", "f.yaml")


def test_templates_render_each_kind_and_escape():
    scope = Scope(vu=7, iteration=2, extracted={"token": "t0k"})
    scope.rows["users"] = {"name": "grace"}
    t = Template(
        "${token}|${vars.who}|${env.HOME}|${secrets.pw}|${data.users.name}|${vu}|${iteration}|$${x}"
    )
    assert t.render(scope, FIXED) == "t0k|ada|/root|s3|grace|7|2|${x}"
    assert Template("plain").literal == "plain"
    assert Template("${vars.n}").value(scope, FIXED) == 3  # one reference keeps its type
    body = Structure({"n": "${vars.n}", "s": "n=${vars.n}", "l": [True, "${vu}"]})
    assert body.render(scope, FIXED) == {"n": 3, "s": "n=3", "l": [True, 7]}
    with pytest.raises(TemplateError, match="is not a reference"):
        Template("${1+1}")
    with pytest.raises(TemplateError, match="has no value yet"):
        Template("${later}").render(Scope(), FIXED)


def write(tmp_path, text):
    p = tmp_path / "p.yaml"
    p.write_text(text)
    return p


def test_executors_become_load_models(tmp_path):
    p = write(
        tmp_path,
        """
scenarios:
  a: { executor: constant-vus, vus: 3, duration: 10s, flow: [] }
  b: { executor: ramping-vus, stages: [{duration: 5s, target: 4}], flow: [] }
  c: { executor: constant-arrival-rate, rate: 120, time_unit: 1m, duration: 5s, flow: [] }
  d: { executor: shared-iterations, vus: 2, iterations: 9, flow: [] }
  e: { executor: cycles, users: "1:5", hits: 3, rampup: 2s, start_time: 1s, flow: [] }
""",
    )
    plan = load_plan(p, env={})
    lanes = {s.name: s.lane for s in plan.scenarios}
    assert lanes["a"].model == Cycles(users=(3,), duration=10.0)
    assert lanes["b"].model == RampingVus(stages=lanes["b"].model.stages, start_vus=0)
    assert isinstance(lanes["c"].model, ArrivalRate)
    assert lanes["c"].model.rate == pytest.approx(2.0)  # 120 per minute
    assert lanes["d"].model == SharedIterations(2, 9)
    assert lanes["e"].model == Cycles(users=(1, 5), hits=3, rampup=2.0)
    assert lanes["e"].start_time == 1.0


def test_every_problem_is_reported_at_once_with_its_place(tmp_path):
    p = write(
        tmp_path,
        """name: broken
secrets: { api_key: NOT_SET_ANYWHERE }
scenarios:
  a:
    executor: ramping-vus
    vus: 3
    flow:
      - request: { url: "/u/${data.nope.id}", method: "G E T" }
      - request:
          url: /x
          extract: [ { type: regex, name: v, expression: "(" } ]
          checks: [ { type: plugin, plugin: ghost } ]
      - think_time: { type: uniform, min: 2s, max: 1s }
thresholds:
  http_req_duration: ["p(95) < lots"]
""",
    )
    with pytest.raises(PlanInvalid) as e:
        load_plan(p, env={})
    text = str(e.value)
    for expected in (
        "p.yaml:2:21: secret 'api_key': environment variable NOT_SET_ANYWHERE is not set",
        "p.yaml:6:5: 'vus' does not apply to the ramping-vus executor",
        "the ramping-vus executor needs 'stages'",
        "undefined data source in ${data.nope.id}",
        "not a regular expression",
        "unknown assertion plugin 'ghost'",
        "max must not be below min",
        "threshold",
    ):
        assert expected in text, (expected, text)


def test_scenario_and_group_filters_resolve_through_the_plans_names(tmp_path):
    from cannonade.model.aggregate import Aggregator
    from cannonade.model.metrics import IntervalDelta, Key, SourceId
    from cannonade.model.summary import RunInfo, compute_summary
    from cannonade.model.thresholds import parse_threshold

    p = write(
        tmp_path,
        """
scenarios:
  web:
    executor: per-vu-iterations
    iterations: 1
    flow:
      - group: { name: cart, steps: [ { request: { name: add, url: /a } } ] }
      - request: { name: home, url: / }
  api:
    executor: per-vu-iterations
    iterations: 1
    flow: [ { request: { name: inventory, url: /i } } ]
""",
    )
    plan = load_plan(p, env={})
    assert plan.tag_index["scenario"]["web"]["requests"] == ["add", "home"]
    assert plan.tag_index["group"]["cart"]["requests"] == ["add"]
    agg = Aggregator()
    delta = IntervalDelta(SourceId("a", 0), 0, 1)
    delta.counters = {
        Key("http_reqs", "add", "GET"): 2.0,
        Key("http_reqs", "home", "GET"): 3.0,
        Key("http_reqs", "inventory", "GET"): 7.0,
    }
    agg.add(delta)
    exprs = {
        "http_reqs{scenario:web}:count==5": True,
        "http_reqs{scenario:api}:count==7": True,
        "http_reqs{group:cart}:count==2": True,
        "http_reqs{scenario:web,group:cart}:count==2": True,
        "http_reqs{scenario:api}:count==5": False,
    }
    info = RunInfo(started=0.0, ended=1.0, options={"tag_index": plan.tag_index})
    summary = compute_summary(agg, info, [parse_threshold(e) for e in exprs])
    got = {r.threshold.source: r.passed for r in summary.thresholds}
    assert got == exprs
    # Shown as written, not as the names they resolved to.
    assert {r.threshold.selector for r in summary.thresholds} >= {"http_reqs{scenario:web}"}


def test_a_multipart_body_parses_back_into_its_parts(tmp_path):
    from email.parser import BytesParser
    from email.policy import HTTP

    from cannonade.plans.flow import MULTIPART_TYPE, _multipart

    (tmp_path / "pic.bin").write_bytes(b"\x00\x01binary\xff")
    p = write(
        tmp_path,
        """
scenarios:
  a:
    executor: per-vu-iterations
    iterations: 1
    flow:
      - request:
          url: /echo
          body:
            multipart:
              title: "hello ${vu}"
              picture: { file: pic.bin, content_type: image/png }
""",
    )
    plan = load_plan(p, env={})
    step = plan.scenarios[0].steps[0]
    body = _multipart(step.parts, Scope(vu=4), plan.fixed)
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {MULTIPART_TYPE}\r\n\r\n".encode() + body
    )
    parts = {
        part.get_param("name", header="content-disposition"): part for part in message.iter_parts()
    }
    assert parts["title"].get_content() == "hello 4"
    picture = parts["picture"]
    assert picture.get_filename() == "pic.bin"
    assert picture.get_content_type() == "image/png"
    assert picture.get_payload(decode=True) == b"\x00\x01binary\xff"
