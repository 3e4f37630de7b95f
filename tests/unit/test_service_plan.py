"""API run requests mean what `cannonade run` options mean; the queue in SQLite."""

import pytest

from cannonade.errors import CannonadeError, ConfigError, ScenarioError
from cannonade.service.plan import RunRequest, command_line, inspect_scenario, plan
from cannonade.service.worker import bundle_kind
from cannonade.storage import RunStatus, Store

SCENARIO = b"""
from cannonade import scenario

thresholds = ["http_req_duration: p(95)<500"]

@scenario
async def s(vu):
    pass
"""


def test_a_request_becomes_the_same_command_line():
    req = RunRequest(
        bundle="b",
        users="2:4",
        duration="3s",
        rampup="1s",
        host="http://127.0.0.1:1",
        headers=["X-A: 1"],
        thresholds=["checks: rate>0.9"],
        follow_redirects=True,
        min_agents=3,
    )
    argv = command_line(req, "s.py")
    assert argv[0] == "s.py"

    def value(flag):
        return argv[argv.index(flag) + 1]

    assert value("--users") == "2:4"
    assert value("--duration") == "3s"
    assert value("--rampup") == "1s"
    assert value("--header") == "X-A: 1"
    assert value("--threshold") == "checks: rate>0.9"
    assert "--follow-redirects" in argv
    assert argv[-4:] == ["--local-agents", "0", "--min-agents", "3"]


def test_plan_checks_options_and_takes_the_scenarios_thresholds(tmp_path):
    path = tmp_path / "s.py"
    path.write_bytes(SCENARIO)
    prepared = plan(
        RunRequest(bundle="b", users="2", hits=1, thresholds=["iterations: count>1"]),
        "python",
        path,
    )
    assert prepared.expressions == ("iterations: count>1", "http_req_duration: p(95)<500")
    assert prepared.bundle is not None
    assert prepared.bundle.data == SCENARIO
    with pytest.raises(ConfigError, match="users"):
        plan(RunRequest(bundle="b", users="x"), "python", path)
    yaml_plan = tmp_path / "p.yaml"
    yaml_plan.write_text(
        "scenarios:\n  s: { executor: shared-iterations, vus: 1, iterations: 2,"
        " flow: [ { request: { url: / } } ] }\n"
    )
    assert plan(RunRequest(bundle="b"), "yaml", yaml_plan).options.lanes[0].name == "s"
    with pytest.raises(ConfigError, match="a plan's scenarios set its load"):
        plan(RunRequest(bundle="b", users="1"), "yaml", yaml_plan)


def test_the_scenario_is_imported_in_a_child_process(tmp_path):
    path = tmp_path / "s.py"
    path.write_bytes(b"print('chatty', end='')\n" + SCENARIO)
    found = inspect_scenario(path)
    assert found.thresholds == ("http_req_duration: p(95)<500",)
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('nope')\n")
    with pytest.raises(ScenarioError, match="RuntimeError"):
        inspect_scenario(bad)


def test_bundle_kinds():
    assert bundle_kind("a.py", b"") == "python"
    assert bundle_kind("a.YAML", b"") == "yaml"
    assert bundle_kind("prog", b"#!/bin/sh\n") == "exec"
    assert bundle_kind("prog", b"\x7fELF...") == "exec"
    with pytest.raises(CannonadeError, match="a bundle is"):
        bundle_kind("notes.txt", b"hello")


def test_the_queue_keeps_order_and_requests(tmp_path):
    with Store.open(tmp_path / "q.db") as store:
        for run_id in ("r2", "r1"):
            store.enqueue(
                run_id,
                scenario="s.py",
                scenario_sha256="",
                options={},
                thresholds=[],
                created=1.0,
                request={"bundle": "b", "id": run_id},
            )
        assert [(q.run_id, q.request["id"]) for q in store.queued()] == [("r2", "r2"), ("r1", "r1")]
        assert store.run_row("r1").status == RunStatus.QUEUED
        assert store.take_queued("r2") is True
        assert store.take_queued("r2") is False
        store.set_status("r1", RunStatus.RUNNING, at=2.0)
        assert store.delete_run("r1") is False  # in progress
        store.set_status("r1", RunStatus.FINISHED, at=3.0)
        assert store.delete_run("r1") is True
        assert store.run_row("r1") is None
        assert [q.run_id for q in store.queued()] == []
