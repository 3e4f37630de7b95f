"""Schemathesis against a live `cannonade hq`: every operation of its OpenAPI schema,
with generated data, must never answer 5xx.

One HQ serves the module (with a token, which every generated request carries, and
--allow-exec so the deepest checks of a run request are reached). Before fuzzing it is
given something to find: a Python bundle, an archive, a run that really ran on a real
agent (stopped afterwards, so no fuzzed run can fire), a queued run and an aborted one.
The stateful run follows the links schemathesis infers (``GET /api/v1/runs`` → the ids
in it → every ``/api/v1/runs/{run_id}...`` operation), so those runs are read,
reported, stopped and deleted in generated orders.

Budget: at most 25 examples per operation, no deadline; the module takes ~20 s.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

pytestmark = pytest.mark.e2e

TOKEN = "tok-" + secrets.token_hex(16)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
API_LINE = re.compile(r"API on http://(\S+) ")
PORTS_LINE = re.compile(r"commands on \S+:(\d+), results on \S+:(\d+)")
IDLE = b"from cannonade import scenario\n\n@scenario\nasync def idle(vu):\n    pass\n"
FINAL = {"finished", "degraded", "interrupted", "failed", "aborted"}
BUDGET = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def stop(popen: subprocess.Popen[bytes]) -> None:
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
    try:
        popen.wait(20)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(10)


class Hq:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "token").write_text(TOKEN)
        self.err = root / "hq.err"
        argv = [sys.executable, "-m", "cannonade", "hq", "--db", str(root / "hq.db")]
        argv += ["--api", "127.0.0.1:0", "--publisher-port", "0", "--results-port", "0"]
        argv += ["--token-file", str(root / "token"), "--allow-exec", "--max-upload", "256KiB"]
        env = {k: v for k, v in os.environ.items() if k != "CANNONADE_TOKEN"}
        with self.err.open("wb") as e:
            self.popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=e, stderr=subprocess.STDOUT, env=env
            )
        self.url = ""
        self.seeded: dict[str, str] = {}

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_listening(self) -> None:
        deadline = time.monotonic() + 30
        while not (found := API_LINE.search(self.stderr())):
            assert self.popen.poll() is None, self.stderr()
            assert time.monotonic() < deadline, self.stderr()
            time.sleep(0.05)
        self.url = f"http://{found.group(1)}"

    def tail(self) -> str:
        """The HQ's output since it started listening: where a traceback would be."""
        return "HQ output:\n" + self.stderr()[-6000:]


def tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def seed(hq: Hq) -> None:
    """Bundles and runs in every state a standing HQ has, one of them with real data."""
    with httpx.Client(base_url=hq.url, headers=AUTH, timeout=60) as c:

        def bundle(name: str, data: bytes) -> str:
            r = c.post("/api/v1/bundles", files={"file": (name, data)})
            assert r.status_code == 201, r.text
            return str(r.json()["id"])

        hq.seeded["python"] = bundle("scenario.py", IDLE)
        hq.seeded["archive"] = bundle("pack.tar.gz", tar_gz({"main.py": IDLE, "lib/x.py": b""}))
        hq.seeded["exec"] = bundle("run.sh", b"#!/bin/sh\nexit 0\n")
        pub, res = (int(p) for p in PORTS_LINE.search(hq.stderr()).groups())  # type: ignore[union-attr]
        argv = [sys.executable, "-m", "cannonade", "agent", "--hq", "127.0.0.1", "--cannons", "1"]
        argv += ["--publisher-port", str(pub), "--results-port", str(res), "--name", "seed"]
        with (hq.root / "agent.err").open("wb") as e:
            agent = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=e, stderr=e)
        try:
            run = c.post("/api/v1/runs", json={"bundle": hq.seeded["archive"], "hits": 2})
            assert run.status_code == 201, run.text
            deadline = time.monotonic() + 60
            url = f"/api/v1/runs/{run.json()['id']}"
            while c.get(url).json()["status"] not in FINAL:
                assert time.monotonic() < deadline, hq.tail()
                time.sleep(0.2)
            assert c.get(url).json()["status"] == "finished", hq.tail()
        finally:
            stop(agent)
        for _ in range(2):
            r = c.post("/api/v1/runs", json={"bundle": hq.seeded["python"], "name": "queued"})
            assert r.status_code == 201, r.text
        assert c.post(f"/api/v1/runs/{r.json()['id']}/stop").status_code == 202


@pytest.fixture(scope="module")
def hq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hq]:
    server = Hq(tmp_path_factory.mktemp("schema"))
    try:
        server.wait_listening()
        seed(server)
        yield server
    finally:
        stop(server.popen)
    # Whatever the tests saw, the HQ itself must not have crashed anywhere.
    assert "Traceback (most recent call last)" not in server.stderr(), server.tail()


@pytest.fixture(scope="module")
def api_schema(hq: Hq) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict({"headers": AUTH})
    return schemathesis.openapi.from_url(f"{hq.url}/openapi.json", config=config)


# Every operation the HQ serves; the schema must list exactly these (a new endpoint
# fails test_the_schema_lists_every_operation until it is added here, and fuzzed).
OPERATIONS = [
    "POST /upload",
    "POST /queue",
    "POST /api/v1/bundles",
    "GET /api/v1/bundles/{bundle_id}",
    "POST /api/v1/runs",
    "GET /api/v1/runs",
    "GET /api/v1/runs/{run_id}",
    "DELETE /api/v1/runs/{run_id}",
    "POST /api/v1/runs/{run_id}/stop",
    "GET /api/v1/runs/{run_id}/summary",
    "GET /api/v1/runs/{run_id}/series.csv",
    "GET /api/v1/runs/{run_id}/report",
    "GET /api/v1/agents",
    "GET /healthz",
    "GET /metrics",
]
POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
MODES = [POSITIVE, NEGATIVE]
# Negative data (what the schema forbids) exists only where the schema constrains the
# input: elsewhere every string is a valid path parameter and there is nothing else.
CONSTRAINED = {"POST /api/v1/bundles", "POST /api/v1/runs", "GET /api/v1/runs"}
FUZZED = [(label, POSITIVE) for label in OPERATIONS]
FUZZED += [(label, NEGATIVE) for label in OPERATIONS if label in CONSTRAINED]


def explain(case: schemathesis.Case, response: schemathesis.Response, hq: Hq) -> str:
    return f"{case.method} {case.formatted_path} -> {response.status_code}\n{hq.tail()}"


def operation(api_schema: schemathesis.BaseSchema, label: str) -> schemathesis.APIOperation:
    found = api_schema.find_operation_by_label(label)
    assert found is not None, label
    return found


def test_the_schema_lists_every_operation(api_schema):
    # schemathesis.pytest.from_fixture would parametrize by itself, but 4.32 breaks on
    # pytest 9 (it sets Function._nodeid), so the operations are named here instead.
    labels = sorted(op.ok().label for op in api_schema.get_all_operations())
    assert labels == sorted(OPERATIONS)


@pytest.mark.parametrize(("label", "mode"), FUZZED, ids=[f"{x} {m.value}" for x, m in FUZZED])
def test_no_operation_answers_5xx(api_schema, hq, label, mode):
    seen: dict[int, int] = {}

    @given(case=operation(api_schema, label).as_strategy(mode))
    @BUDGET
    def fuzz(case: schemathesis.Case) -> None:
        response = case.call()
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        # The token reached the HQ: what follows tested the API, not the gate.
        assert response.status_code != 401, explain(case, response, hq)
        assert response.status_code < 500, explain(case, response, hq)
        case.validate_response(response, checks=[not_a_server_error])

    fuzz()
    assert seen, "nothing was generated"


@given(which=st.sampled_from(["python", "archive", "exec"]), data=st.data())
@BUDGET
def run_options_fuzz(api_schema, hq, mode, which, data):
    case = data.draw(operation(api_schema, "POST /api/v1/runs").as_strategy(mode))
    if isinstance(case.body, dict):
        case.body["bundle"] = hq.seeded[which]
    response = case.call()
    assert response.status_code in {201, 400, 403, 404, 422}, explain(case, response, hq)
    case.validate_response(response, checks=[not_a_server_error])


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
def test_generated_run_options_against_real_bundles(api_schema, hq, mode):
    """A run request's options go through `cannonade run`'s own parser and `prepare`
    (the Python scenario imported in a child process): with a real bundle, generated
    values must give 201, 400, 403 or 422, never 5xx."""
    run_options_fuzz(api_schema, hq, mode)


def test_stateful_links_never_answer_5xx(api_schema, hq):
    codes: dict[tuple[str, str, int], int] = {}

    # DELETE is left out: a deleted run changes what GET /api/v1/runs lists, and so what
    # the next example can draw, which Hypothesis rightly calls a flaky strategy.
    # (DELETE is fuzzed statelessly above, and test_api_security.py deletes real runs.)
    machine = api_schema.exclude(method="DELETE").as_state_machine()

    class Links(machine):  # type: ignore[misc,valid-type]
        def after_call(self, response, case):
            super().after_call(response, case)
            key = (case.method, case.path, response.status_code)
            codes[key] = codes.get(key, 0) + 1
            assert response.status_code < 500, explain(case, response, hq)

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=[not_a_server_error])

    Links.run(settings=settings(BUDGET, max_examples=40, stateful_step_count=8))
    # The links led to the seeded runs, not only to 404s.
    reached = {(m, path) for (m, path, status) in codes if "{run_id}" in path and status != 404}
    assert reached, codes


# /upload and /queue are go-lo's: their bodies are not in the schema, so schemathesis
# sends them nothing useful. Hypothesis fills that gap.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@given(data=st.data())
@BUDGET
def queue_fuzz(hq, data):
    binary = st.sampled_from(sorted(hq.seeded.values())) | JSON
    keys = {"name": JSON, "users": JSON, "duration": JSON, "binary": binary}
    job = data.draw(st.fixed_dictionaries({}, optional=keys) | JSON)
    body = json.dumps(job)  # NaN and Infinity included, as Python's json.loads reads them
    with httpx.Client(base_url=hq.url, headers=AUTH, timeout=60) as c:
        r = c.post("/queue", content=body, headers={"content-type": "application/json"})
    assert r.status_code in {201, 400, 403}, f"POST /queue {job!r} -> {r.status_code}\n{hq.tail()}"


def test_go_lo_queue_with_generated_jobs(hq):
    queue_fuzz(hq)


NAMES = st.sampled_from(
    ["x.py", "x.yaml", "x.tar.gz", "x.tgz", "x.zip", "x", ".x.py", "../x.py", "a/b.py", "x.ZIP"]
) | st.text(max_size=20)


@given(name=NAMES, content=st.binary(max_size=2048))
@BUDGET
def upload_fuzz(hq, name, content):
    with httpx.Client(base_url=hq.url, headers=AUTH, timeout=60) as c:
        for path, ok in (("/api/v1/bundles", 201), ("/upload", 200)):
            r = c.post(path, files={"file": (name, content)})
            assert r.status_code in {ok, 400, 403, 422}, f"{path} {name!r}: {r.status_code}"


def test_uploads_with_generated_names_and_bytes(hq):
    upload_fuzz(hq)


def zip_bytes(extract_version: int | None = None) -> bytearray:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("main.py")
        info.compress_type = zipfile.ZIP_DEFLATED
        if extract_version is not None:
            info.extract_version = extract_version
        z.writestr(info, IDLE)
    return bytearray(buf.getvalue())


@pytest.fixture
def own_hq(tmp_path: Path) -> Iterator[Hq]:
    """An HQ of its own, for tests whose failures leave tracebacks in its output."""
    server = Hq(tmp_path)
    try:
        server.wait_listening()
        yield server
    finally:
        stop(server.popen)


def test_a_zip_of_an_unknown_version_is_a_400(own_hq):
    damaged = bytes(zip_bytes(extract_version=255))  # "zip file version 25.5"
    with httpx.Client(base_url=own_hq.url, headers=AUTH, timeout=60) as c:
        for path in ("/api/v1/bundles", "/upload"):
            r = c.post(path, files={"file": ("damaged.zip", damaged)})
            assert r.status_code == 400, f"{path}: {r.status_code}\n{own_hq.tail()}"


def test_a_zip_with_a_damaged_member_is_a_400_when_queued(own_hq):
    damaged = zip_bytes()
    start = 30 + len("main.py")  # the member's deflate stream, after its local header
    damaged[start : start + 4] = b"\xff\xff\xff\xff"  # "invalid block type"
    with httpx.Client(base_url=own_hq.url, headers=AUTH, timeout=60) as c:
        r = c.post("/api/v1/bundles", files={"file": ("damaged.zip", bytes(damaged))})
        assert r.status_code == 201, r.text  # its directory is intact: taken at upload
        bundle = r.json()["id"]
        r = c.post("/api/v1/runs", json={"bundle": bundle})
        assert r.status_code == 400, f"/api/v1/runs: {r.status_code}\n{own_hq.tail()}"
        r = c.post("/queue", json={"binary": bundle, "users": 1, "duration": 1})
        assert r.status_code == 400, f"/queue: {r.status_code}\n{own_hq.tail()}"
