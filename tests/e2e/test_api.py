"""The HQ as a service: bundles uploaded and runs queued over HTTP, run by real agents,
results fetched back; go-lo's client flow; a queue that survives SIGKILL of the HQ."""

import io
import re
import signal
import subprocess
import sys
import tarfile
import time

import httpx
import pytest
from conftest import descendants, wait_gone
from test_cluster import free_port_pair

pytestmark = pytest.mark.e2e

API_LINE = re.compile(r"API on (http://\S+)")
FINAL = {"finished", "degraded", "interrupted", "failed", "aborted"}

SCENARIO = """
from cannonade import scenario

@scenario
async def hit(vu):
    await vu.http.get("/bytes/7")
"""


def cannonade(*args):
    return [sys.executable, "-m", "cannonade", *args]


class Service:
    """A real `cannonade hq` with its API, and real agents joining it."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.db = tmp_path / "hq.db"
        self.pub, self.res = free_port_pair()
        self.procs = []
        self.hq = None
        self.url = None

    def _spawn(self, name, argv):
        err = open(self.tmp / f"{name}.err", "ab")  # noqa: SIM115 (closed with the process)
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        p.err_path = self.tmp / f"{name}.err"
        err.close()
        self.procs.append(p)
        return p

    def start_hq(self):
        n = sum(1 for p in self.procs if getattr(p, "is_hq", False))
        self.hq = self._spawn(
            f"hq{n}",
            cannonade(
                *("hq", "--api", "127.0.0.1:0", "--db", str(self.db)),
                *("--publisher-port", str(self.pub), "--results-port", str(self.res)),
            ),
        )
        self.hq.is_hq = True
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = API_LINE.search(self.hq.err_path.read_text())
            if m:
                self.url = m.group(1)
                return self.hq
            assert self.hq.poll() is None, self.hq.err_path.read_text()
            time.sleep(0.05)
        pytest.fail("the HQ's API never came up")

    def agent(self, name, cannons=1):
        return self._spawn(
            name,
            cannonade(
                *("agent", "--hq", "127.0.0.1", "--name", name, "--cannons", str(cannons)),
                *("--publisher-port", str(self.pub), "--results-port", str(self.res)),
            ),
        )

    def http(self):
        return httpx.Client(base_url=self.url, timeout=30)

    def wait_agents(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        with self.http() as c:
            while time.monotonic() < deadline:
                ready = [a for a in c.get("/api/v1/agents").json() if a["status"] == "ready"]
                if len(ready) >= n:
                    return
                time.sleep(0.1)
        pytest.fail(f"fewer than {n} agents became ready")

    def wait_final(self, run_id, timeout=60):
        deadline = time.monotonic() + timeout
        with self.http() as c:
            while time.monotonic() < deadline:
                run = c.get(f"/api/v1/runs/{run_id}").json()
                if run["status"] in FINAL:
                    return run
                time.sleep(0.2)
        pytest.fail(f"run {run_id} did not finish: {run}")

    def close(self):
        for p in self.procs:
            tree = descendants(p.pid)
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
            assert wait_gone(tree) == []
        for p in self.procs:
            assert "Traceback (most recent call last)" not in p.err_path.read_text()


@pytest.fixture
def service(tmp_path):
    s = Service(tmp_path)
    yield s
    s.close()


def upload(client, name, data):
    r = client.post("/api/v1/bundles", files={"file": (name, data)})
    assert r.status_code == 201, r.text
    return r.json()


def test_upload_queue_two_agents_and_fetch_the_results(service, target):
    service.start_hq()
    service.agent("a1")
    service.agent("a2", cannons=2)
    service.wait_agents(2)
    with service.http() as c:
        bundle = upload(c, "api.py", SCENARIO.encode())
        assert bundle["kind"] == "python"
        assert len(bundle["sha256"]) == 64
        r = c.post(
            "/api/v1/runs",
            json={
                "bundle": bundle["id"],
                "users": "6",
                "duration": "2s",
                "host": target.url,
                "min_agents": 2,
                "thresholds": ["http_req_failed: rate<0.01"],
            },
        )
        assert r.status_code == 201, r.text
        run_id = r.json()["id"]
        run = service.wait_final(run_id)
        assert run["status"] == "finished", run
        assert run["verdict"] == "passed"
        served = target.stats()["paths"]["/bytes/7"]
        summary = c.get(f"/api/v1/runs/{run_id}/summary").json()
        assert summary["metrics"]["http_reqs"]["count"] == served > 0
        assert run["summary"]["metrics"]["http_reqs"]["count"] == served
        assert sorted(a["name"] for a in summary["cannonade"]["agents"]) == ["a1", "a2"]
        report = c.get(f"/api/v1/runs/{run_id}/report")
        assert report.status_code == 200
        assert report.headers["content-type"].startswith("text/html")
        assert run_id in report.text
        rows = c.get(f"/api/v1/runs/{run_id}/series.csv").text.strip().splitlines()
        assert rows[0].startswith("second,requests,")
        assert sum(int(line.split(",")[1]) for line in rows[1:]) == served
        listed = c.get("/api/v1/runs", params={"status": "finished"}).json()
        assert [x["id"] for x in listed["runs"]] == [run_id]
        metrics = c.get("/metrics").text
        assert 'cannonade_agents{liveness="alive"} 2.0' in metrics
        assert c.get("/healthz").json()["ok"] is True


def test_a_bad_request_is_refused_before_it_is_queued(service):
    service.start_hq()
    with service.http() as c:
        bundle = upload(c, "api.py", SCENARIO.encode())
        r = c.post("/api/v1/runs", json={"bundle": bundle["id"], "users": "two"})
        assert r.status_code == 400
        assert "users" in r.json()["detail"] or "two" in r.json()["detail"]
        r = c.post("/api/v1/runs", json={"bundle": "nope", "users": "1"})
        assert r.status_code == 404
        broken = upload(c, "broken.py", b"import no_such_module_here\n")
        r = c.post("/api/v1/runs", json={"bundle": broken["id"], "users": "1", "hits": 1})
        assert r.status_code == 400
        assert "no_such_module_here" in r.json()["detail"]
        # The HQ imports no uploaded code itself: one that kills its process at import
        # is contained in a child, and the HQ goes on.
        dies = upload(c, "dies.py", b"import os\nos._exit(3)\n")
        r = c.post("/api/v1/runs", json={"bundle": dies["id"], "users": "1", "hits": 1})
        assert r.status_code == 400
        assert "exit 3" in r.json()["detail"]
        assert c.get("/api/v1/runs").json()["runs"] == []
        assert c.get("/healthz").json()["ok"] is True


def test_an_archive_bundle_runs_its_entry_with_its_helpers(service, target):
    service.start_hq()
    service.agent("a1")
    service.wait_agents(1)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in (
            (
                "main.py",
                "from cannonade import scenario\nfrom helpers.paths import PATH\n\n"
                "@scenario\nasync def hit(vu):\n    await vu.http.get(PATH)\n",
            ),
            ("helpers/__init__.py", ""),
            ("helpers/paths.py", "PATH = '/bytes/5'\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with service.http() as c:
        bundle = upload(c, "suite.tar.gz", buf.getvalue())
        assert bundle["kind"] == "archive"
        r = c.post(
            "/api/v1/runs",
            json={"bundle": bundle["id"], "users": "2", "hits": 3, "host": target.url},
        )
        assert r.status_code == 201, r.text
        run = service.wait_final(r.json()["id"])
        assert run["status"] == "finished", run
        assert run["summary"]["metrics"]["http_reqs"]["count"] == 6
        assert target.stats()["paths"]["/bytes/5"] == 6


def test_a_running_run_is_stopped_through_the_api(service, target):
    service.start_hq()
    service.agent("a1")
    service.wait_agents(1)
    with service.http() as c:
        bundle = upload(c, "api.py", SCENARIO.encode())
        run_id = c.post(
            "/api/v1/runs",
            json={"bundle": bundle["id"], "users": "2", "duration": "60s", "host": target.url},
        ).json()["id"]
        deadline = time.monotonic() + 30
        while (c.get(f"/api/v1/runs/{run_id}").json()["live"] or {}).get("requests", 0) == 0:
            assert time.monotonic() < deadline, "the run never reported live totals"
            time.sleep(0.2)
        stopped_at = time.monotonic()
        assert c.post(f"/api/v1/runs/{run_id}/stop").status_code == 202
        run = service.wait_final(run_id)
        assert time.monotonic() - stopped_at < 20
        assert run["status"] == "interrupted"
        assert (
            run["summary"]["metrics"]["http_reqs"]["count"] == target.stats()["paths"]["/bytes/7"]
        )
        assert c.delete(f"/api/v1/runs/{run_id}").status_code == 204
        assert c.get(f"/api/v1/runs/{run_id}").status_code == 404


def test_golo_client_flow_with_plain_http(service, target):
    # What go-lo's client does: multipart upload of the binary, then a JSON job.
    service.start_hq()
    service.agent("a1")
    service.wait_agents(1)
    scenario = SCENARIO.replace('"/bytes/7"', f'"{target.url}/bytes/3"')
    with httpx.Client(base_url=service.url, timeout=30) as c:
        r = c.post("/upload", files={"file": ("loadtest.py", scenario.encode())})
        assert r.status_code == 200
        binary = r.json()["binary"]
        r = c.post(
            "/queue",
            content=b'{"name": "smoke", "users": 2, "duration": 2, "binary": "'
            + binary.encode()
            + b'"}',
        )
        assert r.status_code == 201
        assert r.json() == {"queued": True}
        r = c.post("/queue", content=b"{not json")
        assert r.status_code == 400
        assert r.headers["content-type"].startswith("text/plain")
        r = c.post("/queue", json={"name": "x", "users": 1, "duration": 1, "binary": "f00"})
        assert (r.status_code, r.text) == (400, "f00 is an invalid binary")
        r = c.post("/upload", files={"other": ("x", b"y")})
        assert (r.status_code, r.text) == (400, "http: no such file")
        runs = c.get("/api/v1/runs").json()["runs"]
        assert [x["scenario"] for x in runs] == ["smoke"]
        run = service.wait_final(runs[0]["id"])
    assert run["status"] == "finished", run
    assert run["summary"]["metrics"]["http_reqs"]["count"] == target.stats()["paths"]["/bytes/3"]


def test_the_queue_survives_sigkill_of_the_hq(service, target):
    hq = service.start_hq()
    with service.http() as c:
        bundle = upload(c, "api.py", SCENARIO.encode())
        ids = [
            c.post(
                "/api/v1/runs",
                json={"bundle": bundle["id"], "users": "1", "hits": n, "host": target.url},
            ).json()["id"]
            for n in (2, 3)
        ]
        statuses = [c.get(f"/api/v1/runs/{i}").json()["status"] for i in ids]
    assert statuses == ["queued", "queued"]  # no agent yet
    hq.kill()
    hq.wait(10)
    service.start_hq()
    assert "2 run(s) queued from before" in service.hq.err_path.read_text()
    service.agent("a1")
    runs = [service.wait_final(i) for i in ids]
    assert [r["status"] for r in runs] == ["finished", "finished"]
    assert [r["summary"]["metrics"]["http_reqs"]["count"] for r in runs] == [2, 3]
    assert target.stats()["paths"]["/bytes/7"] == 5


def test_a_yaml_plan_with_its_data_runs_from_an_archive(service, target):
    service.start_hq()
    service.agent("a1", cannons=2)
    service.wait_agents(1)
    buf = io.BytesIO()
    plan = (
        "data:\n  rows: { type: csv, path: rows.csv, mode: shared, on_eof: stop }\n"
        "scenarios:\n  s:\n    executor: per-vu-iterations\n    vus: 2\n    iterations: 3\n"
        "    flow: [ { request: { name: row, url: '/bytes/${data.rows.n}' } } ]\n"
    )
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in (("plan.yaml", plan), ("rows.csv", "n\n1\n2\n3\n4\n5\n6\n")):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with service.http() as c:
        bundle = upload(c, "plan.tgz", buf.getvalue())
        r = c.post("/api/v1/runs", json={"bundle": bundle["id"], "host": target.url})
        assert r.status_code == 201, r.text
        run = service.wait_final(r.json()["id"])
        assert run["status"] == "finished", run
        assert run["summary"]["metrics"]["http_reqs"]["count"] == 6
        refused = c.post(
            "/api/v1/runs", json={"bundle": bundle["id"], "host": target.url, "users": "3"}
        )
        assert refused.status_code == 400
        assert "a plan's scenarios set its load" in refused.json()["detail"]
    assert sorted(p for p in target.stats()["paths"] if p.startswith("/bytes/")) == [
        f"/bytes/{i}" for i in range(1, 7)
    ]
