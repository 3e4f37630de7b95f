"""YAML plans in loadr's format, run for real: `cannonade run PLAN.yaml` against the
embedded target, through HQ, agent and cannons."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cannonade_run

pytestmark = pytest.mark.e2e

PLANS = Path(__file__).parent.parent / "plans"


def plan_dir(tmp_path, *names):
    for name in names:
        shutil.copy(PLANS / name, tmp_path / name)
    return tmp_path


def test_login_with_csv_users_extract_checks_and_thresholds(tmp_path, target):
    d = plan_dir(tmp_path, "login.yaml", "users.csv")
    r, s = cannonade_run(tmp_path, str(d / "login.yaml"), "--host", target.url, "--cannons", "2")
    # "not the wrong user" fails on purpose: a failed check is counted, not fatal, and
    # the thresholds (on the right-user check only) pass.
    assert r.returncode == 0, r.stderr
    m = s["metrics"]
    stats = target.stats()["paths"]
    assert m["http_reqs"]["count"] == stats["/login"] + stats["/private"] == 16
    assert m["http_req_failed"]["passes"] == 0
    assert m["checks"]["passes"] == 8 * 3
    assert m["checks"]["fails"] == 8
    assert m["group_duration"]["max"] >= m["group_duration"]["min"] > 0
    verdicts = {t["metric"]: t["passed"] for t in s["cannonade"]["thresholds"]}
    assert all(verdicts.values()), verdicts
    assert len(verdicts) == 2


def test_every_executor_runs_the_count_it_should(tmp_path, target):
    d = plan_dir(tmp_path, "executors.yaml")
    r, s = cannonade_run(tmp_path, str(d / "executors.yaml"), "--host", target.url)
    assert r.returncode == 0, r.stderr
    paths = target.stats()["paths"]
    by_name = {x["name"]: x["count"] for x in s["cannonade"]["requests_by_name"]}
    for n in range(1, 8):
        assert by_name[f"/bytes/{n}"] == paths[f"/bytes/{n}"], n
    assert paths["/bytes/5"] == 6  # per-vu-iterations: 3 VUs x 2
    assert paths["/bytes/6"] == 7  # shared-iterations
    assert paths["/bytes/7"] == 6  # cycles 1:2 with 2 hits
    assert 35 <= paths["/bytes/3"] <= 41  # 20/s for 2 s
    assert paths["/bytes/1"] > 10


def test_an_invalid_plan_is_refused_before_any_load(tmp_path, target):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "scenarios:\n"
        "  a:\n"
        "    executor: constant-vus\n"
        "    duration: 1s\n"
        "    flow:\n"
        "      - request: { url: '/x/${token}', retries: 2 }\n"
        "      - js: 'session.sleep(1)'\n"
    )
    r, s = cannonade_run(tmp_path, str(bad), "--host", target.url)
    assert r.returncode == 1
    assert s is None
    assert f"{bad}:6:25: undefined variable ${{token}}" in r.stderr
    assert f"{bad}:6:40: unknown key 'retries'" in r.stderr
    assert "unsupported loadr feature: js steps" in r.stderr
    assert target.stats()["requests"] == 0
    v = subprocess.run(
        [sys.executable, "-m", "cannonade", "validate", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert v.returncode == 1
    assert "3 problems" in v.stderr


def test_schema_is_json_schema_and_validates_the_suite_plans():
    import jsonschema
    import yaml

    out = subprocess.run(
        [sys.executable, "-m", "cannonade", "schema"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    schema = json.loads(out)
    jsonschema.Draft202012Validator.check_schema(schema)
    for plan in PLANS.glob("*.yaml"):
        jsonschema.validate(yaml.safe_load(plan.read_text()), schema)


@pytest.fixture
def redis_url(tmp_path):
    import socket
    import time

    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (scripts/test.sh installs it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_redis_plan_through_the_protocol_plugin(tmp_path, redis_url):
    import os

    pytest.importorskip("cannonade_redis")
    d = plan_dir(tmp_path, "redis.yaml")
    env = dict(os.environ, REDIS_URL=redis_url)
    r, s = cannonade_run(tmp_path, str(d / "redis.yaml"), "--cannons", "2", env=env)
    assert r.returncode == 0, r.stderr
    m = s["metrics"]
    assert m["redis_reqs"]["count"] == 30
    assert m["http_req_failed"]["passes"] == 0
    assert m["redis_docs"]["count"] > 0
    assert m["checks"]["passes"] == 10
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        assert client.llen("seen") == 10
        assert client.get("user:0:4") == b"v4"
    finally:
        client.close()


WASM_PLAN = """
name: wasm-plugins
defaults: { http: { base_url: "http://127.0.0.1:1" } }
plugins:
  - { name: wx, path: wx.wasm }
  - { name: wa, path: wa.wasm }
scenarios:
  s:
    executor: per-vu-iterations
    vus: 2
    iterations: 3
    flow:
      - request:
          name: login
          method: POST
          url: /login
          body: { json: { username: "ada" } }
          extract:
            # the fixture's extract() returns the whole body for config "b"
            - { type: plugin, plugin: wx, name: whole, config: "b" }
          assert:
            # and its check() passes a 2xx/3xx answered within a second
            - { type: plugin, plugin: wa, config: "fast and fine" }
      - request:
          name: echo
          method: POST
          url: /echo
          body: "${whole}"
          checks:
            - { type: body_contains, name: the token came through wasm, value: token }
"""


def test_a_plan_with_wasm_extractor_and_assertion_plugins(tmp_path, target):
    wasmtime = pytest.importorskip("wasmtime")
    wat = (Path(__file__).parent.parent / "fixtures" / "wasm" / "plugin.wat").read_text()
    (tmp_path / "wx.wasm").write_bytes(wasmtime.wat2wasm(wat))
    (tmp_path / "wa.wasm").write_bytes(wasmtime.wat2wasm(wat.replace('"extractor"', '"assertion"')))
    plan = tmp_path / "wasm.yaml"
    plan.write_text(WASM_PLAN)
    r, s = cannonade_run(tmp_path, str(plan), "--host", target.url, "--cannons", "2")
    assert r.returncode == 0, r.stderr
    m = s["metrics"]
    assert m["http_reqs"]["count"] == 12 == target.stats()["requests"]
    assert m["http_req_failed"]["passes"] == 0
    assert m["checks"]["passes"] == 6
    assert m["checks"]["fails"] == 0


@pytest.mark.parametrize(
    "name", ["quickstart.yaml", "correlation.yaml", "scenarios-and-groups.yaml"]
)
def test_the_loadr_style_plans_run_and_pass(tmp_path, target, name):
    d = plan_dir(tmp_path, name)
    r, s = cannonade_run(tmp_path, str(d / name), "--host", target.url)
    assert r.returncode == 0, r.stderr
    m = s["metrics"]
    assert m["http_reqs"]["count"] == target.stats()["requests"] > 0
    assert m["http_req_failed"]["passes"] == 0
    if "checks" in m:
        assert m["checks"]["fails"] == 0, s["cannonade"]["errors"]
    assert all(t["passed"] for t in s["cannonade"]["thresholds"])
    if name == "correlation.yaml":
        assert m["http_reqs"]["count"] == 18
        assert m["checks"]["passes"] == 6 * 8
    if name == "scenarios-and-groups.yaml":
        assert target.stats()["paths"]["/bytes/9"] in range(18, 23)
        assert m["group_duration"]["max"] > 0


def test_a_websocket_block_sends_and_waits_for_its_messages(tmp_path, target):
    d = plan_dir(tmp_path, "websocket.yaml")
    r, s = cannonade_run(tmp_path, str(d / "websocket.yaml"), "--host", target.url)
    assert r.returncode == 0, r.stderr
    assert s["metrics"]["checks"]["passes"] == 4
    assert s["metrics"]["checks"]["fails"] == 0
    assert target.stats()["ws_messages"] == 8


ECHO_PLUGIN = '''
"""A protocol plugin installed as a directory: echo:// answers with its options."""
import json


class Echo:
    def __init__(self, config):
        self.prefix = config.get("prefix", "")
        self.closed = False

    async def execute(self, request):
        text = self.prefix + json.dumps(request["options"])
        return {"status": 1, "status_text": "OK", "headers": [], "body": text,
                "error": None, "extras": {"docs": 1}}

    async def close(self):
        self.closed = True


def create(config):
    return Echo(config)
'''

ECHO_PLAN = """
name: echo-plugin
plugins:
  - { name: echo, config: { prefix: "echo:" } }
scenarios:
  s:
    executor: per-vu-iterations
    vus: 2
    iterations: 3
    flow:
      - request:
          name: say
          url: "echo://anywhere/"
          plugin: { said: "hi ${vu}" }
          checks: [ { type: body_contains, name: echoed, value: "echo:" } ]
          extract: [ { type: boundary, name: said, left: 'said": "', right: '"' } ]
      - request:
          name: again
          url: "echo://anywhere/"
          plugin: { back: "${said}" }
          checks: [ { type: body_contains, name: carried, value: "hi " } ]
"""


def test_a_python_protocol_plugin_installed_as_a_directory(tmp_path):
    src = tmp_path / "echo-src"
    src.mkdir()
    (src / "echo_plugin.py").write_text(ECHO_PLUGIN)
    (src / "plugin.toml").write_text(
        '[plugin]\nname = "echo"\nversion = "0.1.0"\nkind = "protocol"\ntype = "python"\n'
        'entry = "echo_plugin:create"\nschemes = ["echo"]\ndescription = "echo test"\n'
    )
    import os

    env = dict(os.environ, CANNONADE_PLUGIN_DIR=str(tmp_path / "plugins"))
    installed = subprocess.run(
        [sys.executable, "-m", "cannonade", "plugin", "install", str(src), "--allow-untrusted"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert installed.returncode == 0, installed.stderr
    plan = tmp_path / "echo.yaml"
    plan.write_text(ECHO_PLAN)
    r, s = cannonade_run(tmp_path, str(plan), "--cannons", "2", env=env)
    assert r.returncode == 0, r.stderr
    m = s["metrics"]
    assert m["echo_reqs"]["count"] == 12
    assert m["echo_docs"]["count"] == 12
    assert m["checks"]["passes"] == 12
    assert m["checks"]["fails"] == 0


@pytest.mark.parametrize("iterations", [3, 5])
def test_a_shared_data_source_gives_each_row_to_exactly_one_iteration(tmp_path, target, iterations):
    # 12 rows, 4 VUs over 2 cannons: every row is taken exactly once, whichever cannon
    # holds the VU (cannon k of N takes rows k, k+N, ...). With 5 iterations each, the
    # rows run out first: on_eof: stop retires the VUs, with no error.
    (tmp_path / "rows.csv").write_text("n\n" + "".join(f"{i}\n" for i in range(1, 13)))
    plan = tmp_path / "rows.yaml"
    plan.write_text(
        "data:\n"
        "  rows: { type: csv, path: rows.csv, mode: shared, on_eof: stop }\n"
        "scenarios:\n"
        "  s:\n"
        "    executor: per-vu-iterations\n"
        "    vus: 4\n"
        f"    iterations: {iterations}\n"
        "    flow: [ { request: { name: row, url: '/bytes/${data.rows.n}' } } ]\n"
    )
    r, s = cannonade_run(tmp_path, str(plan), "--host", target.url, "--cannons", "2")
    assert r.returncode == 0, r.stderr
    paths = target.stats()["paths"]
    assert {p: n for p, n in paths.items() if p.startswith("/bytes/")} == {
        f"/bytes/{i}": 1 for i in range(1, 13)
    }
    assert s["metrics"]["http_reqs"]["count"] == 12
    assert s["metrics"]["iterations"]["count"] == 12
    assert "iteration_errors" not in s["metrics"]
