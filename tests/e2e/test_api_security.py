"""The HQ's HTTP API attacked from outside, against the real server.

Every test starts `cannonade hq --api 127.0.0.1:0 --publisher-port 0 --results-port 0`
as a process of its own (the API address is read from its "API on http://..." line)
and talks to it with httpx, as any client on the network would. Each HQ (and the one
agent) is stopped in a ``finally``: SIGTERM, then a wait, then SIGKILL if it hangs.
SECURITY.md cites these tests by name.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e

TOKEN = "tok-" + secrets.token_hex(16)
WRONG = "tok-" + secrets.token_hex(16)
API_LINE = re.compile(r"API on http://(\S+) ")
PORTS_LINE = re.compile(r"commands on \S+:(\d+), results on \S+:(\d+)")
EXEC_SCRIPT = b"#!/bin/sh\necho fired\n"
ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 57
IDLE = b"from cannonade import scenario\n\n@scenario\nasync def idle(vu):\n    pass\n"
FINAL = {"finished", "degraded", "interrupted", "failed", "aborted"}


class Hq:
    """One `cannonade hq` process, its logs and its database."""

    def __init__(self, root: Path, name: str, args: list[str], env: dict[str, str]) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.db = root / f"{name}.db"
        self.out = root / f"{name}.out"
        self.err = root / f"{name}.err"
        argv = [sys.executable, "-m", "cannonade", "hq", "--db", str(self.db), *args]
        for option, value in (("--publisher-port", "0"), ("--results-port", "0")):
            if option not in args:
                argv += [option, value]
        with self.out.open("wb") as o, self.err.open("wb") as e:
            self.popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=o, stderr=e, env=env
            )
        self.address = ""

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_listening(self, timeout: float = 30.0) -> str:
        """The API's ``host:port`` once the HQ says it listens."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = API_LINE.search(self.stderr())
            if found:
                self.address = found.group(1)
                return self.address
            if self.popen.poll() is not None:
                pytest.fail(f"the HQ exited with {self.popen.returncode}:\n{self.stderr()}")
            time.sleep(0.05)
        pytest.fail(f"the HQ did not start its API in {timeout:g} s:\n{self.stderr()}")

    def zmq_ports(self) -> tuple[int, int]:
        found = PORTS_LINE.search(self.stderr())
        assert found, self.stderr()
        return int(found.group(1)), int(found.group(2))

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def client(self, token: str | None = TOKEN, **kw: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kw)  # type: ignore[arg-type]

    def exit_code(self, timeout: float = 20.0) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the HQ is still running after {timeout:g} s:\n{self.stderr()}")

    def stop(self) -> int | None:
        return stop(self.popen)


def stop(popen: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM and wait; SIGKILL if that is not enough. The exit code of a clean stop."""
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
    try:
        return popen.wait(20)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(10)
        return None


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CANNONADE_TOKEN"}
    return {**env, **extra}


StartHq = Callable[..., Hq]


@pytest.fixture
def start_hq(tmp_path: Path) -> Iterator[StartHq]:
    """Start HQs with a token file holding TOKEN (``token=None`` for none); every HQ a
    test starts is stopped when it ends, passed or failed."""
    started: list[Hq] = []
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")

    def start(*args: str, token: bool = True, listen: bool = True, env: dict | None = None) -> Hq:
        argv = list(args)
        if "--api" not in argv:
            argv = ["--api", "127.0.0.1:0", *argv]
        if token:
            argv += ["--token-file", str(token_file)]
        hq = Hq(tmp_path / "hq", f"hq{len(started)}", argv, env or clean_env())
        started.append(hq)
        if listen:
            hq.wait_listening()
        return hq

    try:
        yield start
    finally:
        for hq in started:
            hq.stop()


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hq]:
    """One HQ with a token, shared by the read-only tests of this module."""
    root = tmp_path_factory.mktemp("locked")
    (root / "token").write_text(TOKEN)
    hq = Hq(root, "hq", ["--api", "127.0.0.1:0", "--token-file", str(root / "token")], clean_env())
    try:
        hq.wait_listening()
        yield hq
    finally:
        hq.stop()


def basic(user: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def upload(name: str, data: bytes) -> dict[str, object]:
    return {"files": {"file": (name, data, "application/octet-stream")}}


# One request of every route family; with the right token none of them is a 401.
ROUTES: list[tuple[str, str, dict[str, object]]] = [
    ("POST", "/upload", upload("scenario.py", IDLE)),
    ("POST", "/queue", {"json": {"name": "x", "users": 1, "duration": 1, "binary": "b"}}),
    ("GET", "/api/v1/runs", {}),
    ("POST", "/api/v1/runs", {"json": {"bundle": "nope"}}),
    ("GET", "/api/v1/runs/nope", {}),
    ("POST", "/api/v1/runs/nope/stop", {}),
    ("DELETE", "/api/v1/runs/nope", {}),
    ("GET", "/api/v1/runs/nope/summary", {}),
    ("GET", "/api/v1/runs/nope/series.csv", {}),
    ("GET", "/api/v1/runs/nope/report", {}),
    ("POST", "/api/v1/bundles", upload("scenario.py", IDLE)),
    ("GET", "/api/v1/bundles/nope", {}),
    ("GET", "/api/v1/agents", {}),
    ("GET", "/metrics", {}),
    ("GET", "/healthz", {}),
    ("GET", "/openapi.json", {}),
    ("GET", "/docs", {}),
    ("GET", "/no/such/route", {}),
]
ROUTE_IDS = [f"{method} {path}" for method, path, _ in ROUTES]

BAD_CREDENTIALS: dict[str, dict[str, str]] = {
    "no Authorization": {},
    "a wrong bearer token": {"Authorization": f"Bearer {WRONG}"},
    "a wrong basic password": basic("x", WRONG),
    "the token as the basic user name": basic(TOKEN, "x"),
    "the token less its last character": {"Authorization": f"Bearer {TOKEN[:-1]}"},
    "the token with a suffix": {"Authorization": f"Bearer {TOKEN}x"},
    "the token without a scheme": {"Authorization": TOKEN},
    "the token under another scheme": {"Authorization": f"Token {TOKEN}"},
    "the token as a cookie": {"Cookie": f"token={TOKEN}"},
    "the token in another header": {"X-Api-Token": TOKEN},
    "garbage basic": {"Authorization": "Basic !!!not-base64!!!"},
}


@pytest.mark.parametrize(("method", "path", "extra"), ROUTES, ids=ROUTE_IDS)
def test_every_route_answers_401_without_the_token(locked, method, path, extra):
    with locked.client(token=None) as c:
        for what, headers in BAD_CREDENTIALS.items():
            r = c.request(method, path, headers=headers, **extra)  # type: ignore[arg-type]
            assert r.status_code == 401, (what, r.status_code, r.text)
            challenge = r.headers.get("www-authenticate", "")
            assert 'Bearer realm="cannonade"' in challenge, what
            assert 'Basic realm="cannonade"' in challenge, what
            # The refusal says nothing about the route: same body for a 404 as for a 200.
            assert r.json() == {"detail": "a valid token is needed (Authorization: Bearer TOKEN)"}
            assert TOKEN not in r.text


def test_the_token_in_the_query_string_is_not_accepted(locked):
    with locked.client(token=None) as c:
        for name in ("token", "access_token", "api_key"):
            r = c.get("/healthz", params={name: TOKEN})
            assert r.status_code == 401, name


def test_a_websocket_handshake_without_the_token_is_refused(locked):
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }
    with locked.client(token=None) as c:
        for path in ("/healthz", "/api/v1/runs", "/live"):
            r = c.get(path, headers=upgrade)
            assert r.status_code == 403, (path, r.status_code)
    assert "Traceback" not in locked.stderr()


def test_an_oversized_upload_without_the_token_gets_401_not_413(start_hq):
    # The token gate is outside the body limit: a stranger cannot make the HQ read a body.
    hq = start_hq("--max-upload", "1KiB")
    with hq.client(token=None) as c:
        r = c.post("/api/v1/bundles", **upload("big.py", b"#" * 64 * 1024))  # type: ignore[arg-type]
        assert r.status_code == 401
        r = c.post("/upload", content=chunks(64, 1024), headers={"content-type": "text/plain"})
        assert r.status_code == 401


# With the token: what each route family answers (none is a 401).
EXPECTED = {
    "POST /upload": 200,
    "POST /queue": 400,  # "b is an invalid binary", as go-lo says it
    "GET /api/v1/runs": 200,
    "POST /api/v1/runs": 404,
    "GET /api/v1/runs/nope": 404,
    "POST /api/v1/runs/nope/stop": 404,
    "DELETE /api/v1/runs/nope": 404,
    "GET /api/v1/runs/nope/summary": 404,
    "GET /api/v1/runs/nope/series.csv": 404,
    "GET /api/v1/runs/nope/report": 404,
    "POST /api/v1/bundles": 201,
    "GET /api/v1/bundles/nope": 404,
    "GET /api/v1/agents": 200,
    "GET /metrics": 200,
    "GET /healthz": 200,
    "GET /openapi.json": 200,
    "GET /docs": 200,
    "GET /no/such/route": 404,
}
GOOD_CREDENTIALS: dict[str, dict[str, object]] = {
    "bearer": {"headers": {"Authorization": f"Bearer {TOKEN}"}},
    "bearer, lower-case scheme": {"headers": {"Authorization": f"bearer {TOKEN}"}},
    "basic password, any user": {"auth": ("x", TOKEN)},
    "basic password, empty user": {"auth": ("", TOKEN)},
}


@pytest.mark.parametrize("how", list(GOOD_CREDENTIALS))
def test_the_token_opens_every_route_as_bearer_or_basic_password(locked, how):
    with httpx.Client(base_url=locked.url, timeout=30, **GOOD_CREDENTIALS[how]) as c:  # type: ignore[arg-type]
        for (method, path, extra), route in zip(ROUTES, ROUTE_IDS, strict=True):
            r = c.request(method, path, **extra)  # type: ignore[arg-type]
            assert r.status_code == EXPECTED[route], (route, r.status_code, r.text)
            assert "www-authenticate" not in r.headers, route


def test_the_token_in_the_url_works_like_a_basic_password(locked):
    # What a client that takes only a URL does: http://x:TOKEN@host:port/...
    with httpx.Client(base_url=f"http://x:{TOKEN}@{locked.address}", timeout=30) as c:
        assert c.get("/healthz").json()["ok"] is True
        r = c.get("/metrics")
        assert r.status_code == 200
        assert "cannonade_queue_length" in r.text
        assert c.get("/openapi.json").json()["info"]["title"] == "cannonade HQ"


@pytest.mark.parametrize("via", ["--token-file", "CANNONADE_TOKEN"])
def test_the_token_never_reaches_the_logs_or_the_database(start_hq, tmp_path, via):
    if via == "--token-file":
        hq = start_hq("--allow-exec")
    else:
        hq = start_hq("--allow-exec", token=False, env=clean_env(CANNONADE_TOKEN=TOKEN))
    assert "token required" in hq.stderr()
    ids = []
    with hq.client() as c, httpx.Client(base_url=hq.url, auth=("x", TOKEN), timeout=30) as b:
        for client in (c, b):
            r = client.post("/api/v1/bundles", **upload("scenario.py", IDLE))  # type: ignore[arg-type]
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
            r = client.post("/upload", **upload("run.sh", EXEC_SCRIPT))  # type: ignore[arg-type]
            assert r.status_code == 200, r.text
            queued = client.post("/api/v1/runs", json={"bundle": ids[-1], "users": "1"})
            assert queued.status_code == 201, queued.text
            run = queued.json()["id"]
            job = {"name": "golo", "users": 1, "duration": 1, "binary": ids[-1]}
            assert client.post("/queue", json=job).status_code == 201
            # Errors, refusals and lookups carry the token too.
            assert client.post("/api/v1/runs", json={"bundle": ids[-1], "users": "x"}).is_error
            assert client.post("/api/v1/runs", json={"bundle": "nope"}).status_code == 404
            assert client.get(f"/api/v1/runs/{run}").status_code == 200
            assert client.get("/api/v1/runs").status_code == 200
            assert client.get("/metrics").status_code == 200
            assert client.post(f"/api/v1/runs/{run}/stop").status_code == 202
            assert client.delete(f"/api/v1/runs/{run}").status_code == 204
    # Wrong tokens are not logged either (a near miss would tell an attacker something).
    with hq.client(token=TOKEN + "x") as c:
        assert c.get("/healthz").status_code == 401
    stored_while_running = b"".join(p.read_bytes() for p in hq.root.glob(f"{hq.db.name}*"))
    assert hq.stop() == 0, hq.stderr()
    files = sorted(hq.root.glob(f"{hq.db.name}*"))
    assert files, "no database was written"
    stored = b"".join(p.read_bytes() for p in files) + stored_while_running
    assert b"scenario.py" in stored  # the database is not empty: the check means something
    logs = hq.stdout() + hq.stderr()
    assert "API on http://" in logs
    basic_value = base64.b64encode(f"x:{TOKEN}".encode())
    for secret in (TOKEN.encode(), basic_value):
        assert secret not in stored, f"{secret!r} is in the database"
        assert secret.decode() not in logs, f"{secret!r} is in the HQ's output"
    assert (TOKEN + "x") not in logs


def chunks(count: int, size: int, sent: list[int] | None = None) -> Iterator[bytes]:
    for _ in range(count):
        if sent is not None:
            sent.append(size)
        yield b"x" * size


def test_an_upload_over_max_upload_gets_413_and_the_hq_keeps_serving(start_hq):
    hq = start_hq("--max-upload", "1KiB")
    big = b"# padding\n" * 205  # 2,050 bytes
    with hq.client() as c:
        # Content-Length says it up front: refused before the body is read.
        for path in ("/api/v1/bundles", "/upload"):
            r = c.post(path, **upload("big.py", big))  # type: ignore[arg-type]
            assert "content-length" in r.request.headers
            assert r.status_code == 413, (path, r.text)
            assert "1024 byte limit" in r.json()["detail"]
        # Chunked: no length announced, counted as it arrives.
        for path in ("/api/v1/bundles", "/upload", "/queue", "/api/v1/runs"):
            r = c.post(
                path,
                content=chunks(4, 512),
                headers={"content-type": "multipart/form-data; boundary=zz"},
            )
            assert r.request.headers.get("transfer-encoding") == "chunked"
            assert "content-length" not in r.request.headers
            assert r.status_code == 413, (path, r.text)
        # The HQ is still there, and an upload under the limit is taken.
        assert c.get("/healthz").json()["ok"] is True
        r = c.post("/api/v1/bundles", **upload("small.py", IDLE))  # type: ignore[arg-type]
        assert r.status_code == 201, r.text
        assert c.get(f"/api/v1/bundles/{r.json()['id']}").json()["size"] == len(IDLE)


def test_the_limit_is_exact_to_the_byte(start_hq):
    hq = start_hq("--max-upload", "1KiB")
    headers = {"content-type": "application/json"}
    with hq.client() as c:
        for body in (b"x" * 1024, chunks(2, 512)):
            r = c.post("/queue", content=body, headers=headers)
            assert r.status_code == 400, r.text  # read in full, and not JSON
        for body in (b"x" * 1025, chunks(1, 1025), iter([b"x" * 1024, b"x"])):
            r = c.post("/queue", content=body, headers=headers)
            assert r.status_code == 413, r.text


def test_an_endless_chunked_upload_is_cut_off(start_hq):
    hq = start_hq("--max-upload", "1KiB")
    sent: list[int] = []
    total = 256 * 1024 * 1024
    with hq.client() as c:
        r = c.post(
            "/upload",
            content=chunks(total // 65536, 65536, sent),
            headers={"content-type": "multipart/form-data; boundary=zz"},
        )
        assert r.status_code == 413
        # The HQ stopped reading long before the client ran out of data.
        assert sum(sent) < total // 16, sum(sent)
        assert c.get("/healthz").status_code == 200
    assert "Traceback" not in hq.stderr()


def tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_executables_and_test_runners_are_refused_without_allow_exec(start_hq):
    hq = start_hq()
    with hq.client() as c:
        for name, data in (("run.sh", EXEC_SCRIPT), ("loadtest", ELF)):
            for path in ("/api/v1/bundles", "/upload"):
                r = c.post(path, **upload(name, data))  # type: ignore[arg-type]
                assert r.status_code == 403, (name, path, r.text)
                assert "--allow-exec" in r.text
        scenario = c.post("/api/v1/bundles", **upload("scenario.py", IDLE)).json()["id"]  # type: ignore[arg-type]
        runner = {"bundle": scenario, "test_runner": "sh -c 'touch /tmp/x' {test}", "test": "t"}
        r = c.post("/api/v1/runs", json=runner)
        assert r.status_code == 403, r.text
        assert "--allow-exec" in r.json()["detail"]
        # An archive may hold a program, but it cannot be the entry that runs.
        archive = tar_gz({"run.sh": EXEC_SCRIPT, "scenario.py": IDLE})
        packed = c.post("/api/v1/bundles", **upload("both.tar.gz", archive))  # type: ignore[arg-type]
        assert packed.status_code == 201, packed.text
        r = c.post("/api/v1/runs", json={"bundle": packed.json()["id"], "entry": "run.sh"})
        assert r.status_code == 403, r.text
        r = c.post("/api/v1/runs", json={"bundle": packed.json()["id"], "entry": "scenario.py"})
        assert r.status_code == 201, r.text
        # Nothing refused was queued: only the archive's Python entry is.
        runs = c.get("/api/v1/runs").json()["runs"]
        assert [run["id"] for run in runs] == [r.json()["id"]]


def test_allow_exec_accepts_executables_and_test_runners(start_hq):
    hq = start_hq("--allow-exec")
    with hq.client() as c:
        r = c.post("/api/v1/bundles", **upload("run.sh", EXEC_SCRIPT))  # type: ignore[arg-type]
        assert r.status_code == 201, r.text
        assert r.json()["kind"] == "exec"
        r = c.post("/upload", **upload("loadtest", ELF))  # type: ignore[arg-type]
        assert r.status_code == 200, r.text
        exec_id = r.json()["binary"]
        assert c.get(f"/api/v1/bundles/{exec_id}").json()["kind"] == "exec"
        r = c.post("/api/v1/runs", json={"bundle": exec_id, "users": "1", "duration": "1s"})
        assert r.status_code == 201, r.text
        scenario = c.post("/api/v1/bundles", **upload("scenario.py", IDLE)).json()["id"]  # type: ignore[arg-type]
        runner = {"bundle": scenario, "test_runner": "sh -c 'exit 0' {test}", "test": "t"}
        r = c.post("/api/v1/runs", json=runner)
        assert r.status_code == 201, r.text
        # An archive's executable entry passes the --allow-exec gate (see the next test).
        packed = c.post("/api/v1/bundles", **upload("p.tgz", tar_gz({"run.sh": EXEC_SCRIPT})))  # type: ignore[arg-type]
        r = c.post("/api/v1/runs", json={"bundle": packed.json()["id"], "entry": "run.sh"})
        assert r.status_code != 403, r.text


def test_allow_exec_queues_an_archive_whose_entry_is_an_executable(start_hq):
    hq = start_hq("--allow-exec")
    with hq.client() as c:
        packed = c.post("/api/v1/bundles", **upload("p.tgz", tar_gz({"run.sh": EXEC_SCRIPT})))  # type: ignore[arg-type]
        assert packed.status_code == 201, packed.text
        r = c.post("/api/v1/runs", json={"bundle": packed.json()["id"], "entry": "run.sh"})
        assert r.status_code == 201, r.text


def non_loopback_ipv4() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    candidates = []
    with contextlib.suppress(OSError):
        candidates.append(socket.gethostbyname(socket.gethostname()))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent, a route is chosen
            candidates.append(s.getsockname()[0])
        except OSError:
            pass
    for address in candidates:
        if address.startswith("127.") or address == "0.0.0.0":
            continue
        with socket.socket() as probe:
            try:
                probe.bind((address, 0))
            except OSError:
                continue
        return address
    return None


EXPOSED = ["0.0.0.0", "[::]", "example.com", "hostname-ip"]


@pytest.mark.parametrize("host", EXPOSED)
def test_an_api_beyond_loopback_without_a_token_is_refused_and_binds_nothing(start_hq, host):
    if host == "hostname-ip":
        host = non_loopback_ipv4() or pytest.skip("this machine has no non-loopback IPv4")
    # Hold the ports the HQ would bind: had it tried, it would fail with another message.
    held = []
    for _ in range(3):
        s = socket.socket()
        s.bind(("0.0.0.0", 0))
        s.listen()
        held.append(s)
    api, pub, res = (s.getsockname()[1] for s in held)
    try:
        hq = start_hq(
            "--api",
            f"{host}:{api}",
            "--publisher-port",
            str(pub),
            "--results-port",
            str(res),
            token=False,
            listen=False,
        )
        assert hq.exit_code() == 1, hq.stderr()
    finally:
        for s in held:
            s.close()
    err = hq.stderr()
    assert "needs a token" in err, err
    assert "--token-file" in err
    assert f"--api {host.strip('[]')}" in err
    assert "API on" not in err
    assert "commands on" not in err
    assert "Traceback" not in err
    assert not hq.db.exists(), "the HQ opened its database before refusing"


def test_a_token_shorter_than_16_characters_is_refused(start_hq):
    hq = start_hq(token=False, listen=False, env=clean_env(CANNONADE_TOKEN="short"))
    assert hq.exit_code() == 1
    assert "at least 16 characters" in hq.stderr()
    assert "short" not in hq.stderr()


def test_an_api_on_every_interface_starts_with_a_token(start_hq):
    hq = start_hq("--api", "0.0.0.0:0")
    assert "token required" in hq.stderr()
    port = hq.address.rsplit(":", 1)[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
        assert c.get("/healthz").status_code == 401
        assert c.get("/healthz", auth=("x", TOKEN)).json()["ok"] is True


def test_an_api_on_a_non_loopback_address_starts_with_a_token(start_hq):
    address = non_loopback_ipv4()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4")
    hq = start_hq("--api", f"{address}:0")
    assert hq.address.startswith(f"{address}:")
    with hq.client(token=None) as c:
        assert c.get("/healthz").status_code == 401
        assert c.get("/healthz", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_loopback_without_a_token_starts_and_says_so(start_hq):
    hq = start_hq("--api", "localhost:0", token=False)
    assert "no token (loopback only)" in hq.stderr()
    assert hq.address.startswith(("127.0.0.1:", "[::1]:")), hq.address
    with hq.client(token=None) as c:
        assert c.get("/healthz").status_code == 200


@contextlib.contextmanager
def joined_agent(hq: Hq, log: Path, **env: str) -> Iterator[Path]:
    """A real `cannonade agent` joined to ``hq``; yields the TMPDIR it was given, and
    stops it (and removes that directory) on the way out."""
    # Short: an ipc socket's path has at most 107 characters.
    tmp = Path(tempfile.mkdtemp(prefix="cnd-api-"))
    pub, res = hq.zmq_ports()
    argv = [sys.executable, "-m", "cannonade", "agent", "--hq", "127.0.0.1", "--cannons", "1"]
    argv += ["--publisher-port", str(pub), "--results-port", str(res), "--name", "e2e"]
    with log.open("wb") as err:
        agent = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=clean_env(TMPDIR=str(tmp), **env),
        )
    try:
        with hq.client() as c:
            deadline = time.monotonic() + 30
            while c.get("/healthz").json()["agents"] < 1:
                assert time.monotonic() < deadline, hq.stderr()
                assert agent.poll() is None, log.read_text()
                time.sleep(0.1)
        yield tmp
    finally:
        stop(agent)
        shutil.rmtree(tmp, ignore_errors=True)


def test_the_agents_ipc_socket_is_in_a_directory_only_its_user_reaches(start_hq, tmp_path):
    hq = start_hq()
    with joined_agent(hq, tmp_path / "agent.err") as agent_tmp:
        homes = list(agent_tmp.glob("cannonade-agent-*"))
        assert len(homes) == 1, homes
        assert stat.S_IMODE(homes[0].stat().st_mode) == 0o700
        assert stat.S_ISSOCK((homes[0] / "cannons.ipc").stat().st_mode)


def test_whoever_holds_the_token_runs_code_on_the_hq_host_and_the_agents(start_hq, tmp_path):
    """What SECURITY.md warns about, shown: a queued Python scenario (no --allow-exec
    needed) runs its import-time code on the HQ host (in the child process that checks
    it) and in the agent's cannons, as their users, with their environments."""
    marks = tmp_path / "marks"
    marks.mkdir()
    scenario = (
        "import os, pathlib\n"
        f"pathlib.Path({str(marks)!r}, str(os.getpid())).write_text(\n"
        "    f\"{os.environ.get('API_E2E_WHERE')} {os.getuid()}\")\n"
    ).encode() + IDLE
    hq = start_hq(env=clean_env(API_E2E_WHERE="hq"))
    with joined_agent(hq, tmp_path / "agent.err", API_E2E_WHERE="agent"), hq.client() as c:
        bundle = c.post("/api/v1/bundles", **upload("probe.py", scenario)).json()["id"]  # type: ignore[arg-type]
        r = c.post("/api/v1/runs", json={"bundle": bundle, "users": "1", "hits": 1})
        assert r.status_code == 201, r.text
        run = r.json()["id"]
        deadline = time.monotonic() + 60
        while (status := c.get(f"/api/v1/runs/{run}").json()["status"]) not in FINAL:
            assert time.monotonic() < deadline, hq.stderr()
            time.sleep(0.2)
        assert status == "finished", hq.stderr()
    seen = {p.read_text() for p in marks.iterdir()}
    assert f"hq {os.getuid()}" in seen, seen
    assert f"agent {os.getuid()}" in seen, seen


# -- without a token, loopback is the only protection: what a browser can still do ------
# A web page the HQ host's user opens can make the browser send requests to
# 127.0.0.1:8081 (cross-site "simple" requests: form posts, text/plain bodies) and, via
# DNS rebinding (its own host name resolving to 127.0.0.1), read the answers too. An HQ
# without a token therefore answers only a loopback Host, and no foreign Origin.
def test_the_json_api_refuses_a_text_plain_body(start_hq):
    # What a cross-site page can send without a CORS preflight is not JSON to FastAPI.
    hq = start_hq(token=False)
    with hq.client(token=None) as c:
        bundle = c.post("/api/v1/bundles", **upload("s.py", IDLE)).json()["id"]  # type: ignore[arg-type]
        body = f'{{"bundle": "{bundle}"}}'
        r = c.post("/api/v1/runs", content=body, headers={"content-type": "text/plain"})
        assert r.status_code == 422, r.text
        assert c.get("/api/v1/runs").json()["runs"] == []
        r = c.post("/api/v1/runs", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 201, r.text


def test_a_tokenless_hq_answers_only_requests_for_a_loopback_host_name(start_hq):
    hq = start_hq(token=False)
    with hq.client(token=None) as c:
        assert c.get("/healthz").status_code == 200
        rebound = {"Host": f"rebind.attacker.example:{hq.address.rsplit(':', 1)[1]}"}
        assert c.get("/api/v1/runs", headers=rebound).status_code in {400, 403, 421}
        r = c.post("/upload", headers=rebound, **upload("s.py", IDLE))  # type: ignore[arg-type]
        assert r.status_code in {400, 403, 421}, r.text


def test_a_tokenless_hq_refuses_cross_site_posts(start_hq):
    hq = start_hq(token=False)
    foreign = {"Origin": "http://attacker.example"}
    with hq.client(token=None) as c:
        r = c.post("/upload", headers=foreign, **upload("s.py", IDLE))  # type: ignore[arg-type]
        assert r.status_code == 403, r.text
        binary = c.post("/upload", **upload("s.py", IDLE)).json()["binary"]  # type: ignore[arg-type]
        job = f'{{"binary": "{binary}", "users": 1, "duration": 1}}'
        r = c.post("/queue", content=job, headers={**foreign, "content-type": "text/plain"})
        assert r.status_code in {403, 415}, r.text
