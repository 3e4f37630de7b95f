"""The HQ API client: request shapes and error handling against httpx.MockTransport,
the real app in-process (Starlette's TestClient), and the `submit` / `runs --hq`
command lines on top of them."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import threading

import httpx
import pytest

from cannonade.api.app import create_app
from cannonade.api.context import Api, ApiConfig
from cannonade.cli import submit as submit_cli
from cannonade.cli.main import main
from cannonade.client import http as client_http
from cannonade.client.connect import hq_address
from cannonade.client.http import UNREACHABLE, ApiError, HQClient
from cannonade.client.render import exit_code, progress_line, run_cells, summary_text
from cannonade.errors import ConfigError
from cannonade.service.board import Board
from cannonade.service.plan import RunRequest

TOKEN = "t" * 24
SCENARIO = b"from cannonade import scenario\n\n@scenario\nasync def hit(vu):\n    pass\n"


# -- helpers --------------------------------------------------------------------------------


def mock_client(handler, token=None):
    return HQClient("http://hq:8081", token, transport=httpx.MockTransport(handler))


def answer(status, body):
    return lambda request: httpx.Response(status, json=body)


def run_json(**over):
    base = {
        "id": "r1",
        "status": "finished",
        "scenario": "s.py",
        "created": 1.0,
        "started": 2.0,
        "ended": 4.0,
        "verdict": "passed",
        "thresholds": [],
        "options": {},
        "live": None,
        "summary": None,
    }
    return {**base, **over}


def export(requests=10, thresholds=(), error="", notes=()):
    return {
        "metrics": {
            "http_reqs": {"count": requests, "rate": requests / 2},
            "http_req_failed": {"passes": 1, "fails": requests - 1, "value": 0.1},
            "http_req_duration": {"avg": 1.5, "med": 1.0, "p(95)": 3.0, "p(99)": 4.0, "max": 9},
            "iterations": {"count": requests, "rate": 5},
        },
        "cannonade": {
            "duration_s": 2,
            "totals": {"requests": requests, "data_received": 2000, "data_sent": 0},
            "thresholds": list(thresholds),
            "errors": [{"kind": "KeyError", "message": "'x'", "count": 2}],
            "notes": list(notes),
            "error": error,
        },
    }


def remote(**over):
    return client_http.RemoteRun.from_json(run_json(**over))


# -- requests and errors (MockTransport) ----------------------------------------------------


def test_upload_sends_the_file_as_multipart_field_file_with_the_token():
    seen = []

    def handler(request):
        seen.append(request)
        body = {"id": "b1", "sha256": "0" * 64, "filename": "s.py", "kind": "python"}
        return httpx.Response(201, json={**body, "size": 5, "created": 1.0})

    with mock_client(handler, TOKEN) as c:
        bundle = c.upload_bundle("s.py", b"hello")
    assert bundle.id == "b1"
    assert bundle.kind == "python"
    (req,) = seen
    assert req.method == "POST"
    assert req.url.path == "/api/v1/bundles"
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    body = req.read()
    assert b'name="file"; filename="s.py"' in body
    assert b"hello" in body


def test_create_run_posts_the_request_as_json():
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(201, json={"id": "r9", "status": "queued"})

    with mock_client(handler) as c:
        assert c.create_run({"bundle": "b1", "users": "2"}) == "r9"
    assert seen[0].url.path == "/api/v1/runs"
    assert json.loads(seen[0].read()) == {"bundle": "b1", "users": "2"}
    assert "authorization" not in seen[0].headers


def test_list_runs_passes_status_limit_and_offset():
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(
            200, json={"runs": [run_json()], "offset": 5, "limit": 3, "next_offset": 8}
        )

    with mock_client(handler) as c:
        page = c.list_runs("finished", 3, 5)
    assert dict(seen[0].url.params) == {"status": "finished", "limit": "3", "offset": "5"}
    assert [r.id for r in page.runs] == ["r1"]
    assert page.next_offset == 8


def test_a_run_id_is_one_path_segment_whatever_it_holds():
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(202, json={"id": "x", "status": "stopping"})

    with mock_client(handler) as c:
        assert c.stop_run("../bundles/x?y") == "stopping"
    assert seen[0].url.raw_path == b"/api/v1/runs/..%2Fbundles%2Fx%3Fy/stop"


@pytest.mark.parametrize(
    ("status", "body", "detail"),
    [
        (401, {"detail": "a valid token is needed (Authorization: Bearer TOKEN)"}, "valid token"),
        (413, {"detail": "the request body is over the 10 byte limit"}, "over the 10 byte"),
        (404, {"detail": "no run 'zz'"}, "no run 'zz'"),
        (403, {"detail": "executable bundles are refused"}, "executable bundles"),
        (400, {"detail": "run options: --users: bad"}, "run options: --users: bad"),
    ],
)
def test_an_error_status_raises_api_error_with_the_detail(status, body, detail):
    with mock_client(answer(status, body)) as c, pytest.raises(ApiError) as e:
        c.get_run("zz")
    assert e.value.status == status
    assert detail in e.value.detail


def test_validation_errors_name_the_field():
    body = {
        "detail": [
            {"loc": ["body", "hits"], "msg": "Input should be greater than or equal to 1"},
            {"loc": ["body", "extra"], "msg": "Extra inputs are not permitted"},
        ]
    }
    with mock_client(answer(422, body)) as c, pytest.raises(ApiError) as e:
        c.create_run({"bundle": "b", "hits": 0, "extra": 1})
    assert e.value.detail == (
        "hits: Input should be greater than or equal to 1; extra: Extra inputs are not permitted"
    )


def test_a_plain_text_error_is_its_text_and_html_is_the_status_phrase():
    text = mock_client(lambda r: httpx.Response(502, text="upstream gone"))
    with text as c, pytest.raises(ApiError, match="upstream gone"):
        c.get_run("x")
    html = mock_client(lambda r: httpx.Response(502, text="<html>bad</html>"))
    with html as c, pytest.raises(ApiError, match="502 Bad Gateway"):
        c.get_run("x")


def test_an_answer_in_the_wrong_shape_is_an_api_error():
    with mock_client(answer(200, {"no": "id"})) as c, pytest.raises(ApiError, match="shape"):
        c.get_run("x")
    listed = mock_client(lambda r: httpx.Response(200, text="[1]"))
    with listed as c, pytest.raises(ApiError, match="not a JSON object"):
        c.get_run("x")


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), "cannot reach the HQ"),
        (httpx.ReadTimeout("timed out"), "did not answer in time"),
    ],
)
def test_an_unreachable_hq_is_status_0(exc, words):
    def handler(request):
        raise exc

    with mock_client(handler) as c, pytest.raises(ApiError) as e:
        c.list_runs()
    assert e.value.status == UNREACHABLE
    assert words in e.value.detail
    assert "http://hq:8081" in e.value.detail


# -- where the HQ is and the token ----------------------------------------------------------


def test_the_token_file_wins_then_the_url_password_then_the_environment(tmp_path):
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    env = {"CANNONADE_TOKEN": "from-env-" + "e" * 16}
    url = "http://user:from%2Durl@hq:8081/"
    assert hq_address(url, str(f), env) == ("http://hq:8081", TOKEN)
    assert hq_address(url, None, env) == ("http://hq:8081", "from-url")
    assert hq_address("http://hq:8081", None, env) == ("http://hq:8081", env["CANNONADE_TOKEN"])
    assert hq_address("hq:8081", None, {}) == ("http://hq:8081", None)


@pytest.mark.parametrize("url", ["ftp://x:SECRET@hq", "http://x:SECRET@hq:99999", "http://"])
def test_a_bad_url_is_refused_without_repeating_the_token(url):
    with pytest.raises(ConfigError) as e:
        hq_address(url, None, {})
    assert "SECRET" not in str(e.value)


def test_an_empty_or_missing_token_file_is_refused(tmp_path):
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        hq_address("http://hq", str(tmp_path / "empty"), {})
    with pytest.raises(ConfigError, match="No such file"):
        hq_address("http://hq", str(tmp_path / "none"), {})


# -- rendering and exit codes ---------------------------------------------------------------

FAILED_THRESHOLD = {
    "metric": "http_req_duration",
    "condition": "p(95)<0",
    "passed": False,
    "value": 3.0,
    "unit": "ms",
    "reason": "",
}


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"summary": export()}, 0),
        ({"verdict": "failed", "summary": export(thresholds=[FAILED_THRESHOLD])}, 99),
        ({"status": "degraded", "summary": export()}, 0),
        ({"status": "degraded", "verdict": "failed", "summary": export(error="lost")}, 1),
        ({"status": "failed", "verdict": "failed"}, 1),
        ({"status": "interrupted", "summary": export()}, 130),
        ({"status": "aborted", "started": None, "ended": 3.0}, 130),
    ],
)
def test_exit_codes_are_those_of_cannonade_run(over, code):
    assert exit_code(remote(**over)) == code


def test_the_summary_shows_totals_thresholds_errors_and_notes():
    run = remote(
        verdict="failed",
        summary=export(requests=1234, thresholds=[FAILED_THRESHOLD], notes=["agent a1: lost"]),
    )
    text = summary_text(run)
    assert text.splitlines()[0] == "run r1: finished, failed"
    assert "http_reqs .......... 1,234  617.0/s" in text
    assert "p(95)=3ms" in text
    assert "✗ http_req_duration: p(95)<0  value 3ms" in text
    assert "2 × KeyError: 'x'" in text
    assert "note: agent a1: lost" in text


def test_progress_lines_while_queued_and_running():
    assert progress_line(remote(status="queued", started=None), now=66.0).split() == [
        "queued",
        "01:05",
    ]
    live = {"elapsed": 3.2, "total": 10, "requests": 4321, "rps": 1234.4, "errors": 2, "p95": 0.012}
    line = progress_line(remote(status="running", live=live))
    assert " ".join(line.split()) == (
        "running 00:03/00:10 requests 4,321 req/s 1,234 errors 2 p95 12ms"
    )


def test_run_cells_read_the_summary_or_the_live_totals():
    cells = run_cells(remote(summary=export(requests=50)))
    assert cells[0:3] == ("r1", "finished", "passed")
    assert cells[5:] == ("2s", "50", "3ms")
    live = {"requests": 7, "p95": 0.002}
    cells = run_cells(remote(status="running", verdict=None, ended=None, live=live))
    assert cells[2] == "-"
    assert cells[5:] == ("-", "7", "2ms")


# -- the submit command line ----------------------------------------------------------------


def submit_args(*argv):
    return submit_cli_parser().parse_args(["submit", *argv])


def submit_cli_parser():
    import argparse

    p = argparse.ArgumentParser(prog="cannonade")
    sub = p.add_subparsers(dest="command")
    submit_cli.add_submit_parser(sub)
    return p


def test_every_run_request_field_has_a_submit_option():
    args = submit_args(
        "s.tgz", "--hq", "http://hq", "--entry", "main.py", "--name", "n",
        "-u", "2", "-d", "3s", "--hits", "4", "--rampup", "1s", "--stages", "1s:2",
        "--iterations", "9", "--rate", "5/s", "--rate-stages", "1s:2/s", "--max-vus", "3",
        "--pre-vus", "1", "--graceful-stop", "2s", "--max-duration", "1m", "--seed", "7",
        "--host", "http://t", "--timeout", "3s", "--connect-timeout", "1s",
        "--follow-redirects", "--insecure", "-H", "A: b", "--threshold", "checks:rate>0",
        "--min-agents", "2", "--test-runner", "node r.js {test}", "--test", "t1",
        "--exec-args", "a 'b c'",
    )  # fmt: skip
    req = submit_cli.run_request(args, "b1")
    assert set(req) == set(RunRequest.model_fields)
    assert req["exec_args"] == ["a", "b c"]
    assert req["headers"] == ["A: b"]
    RunRequest.model_validate(req)  # every value has the API's type


def test_only_given_fields_are_sent():
    req = submit_cli.run_request(submit_args("s.py", "--hq", "http://hq", "-u", "2"), "b1")
    assert req["users"] == "2"
    assert "min_agents" not in req
    assert "exec_args" not in req
    assert "host" not in req
    RunRequest.model_validate(req)


def run_main(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_local_only_options_are_refused(capsys, tmp_path):
    f = tmp_path / "s.py"
    f.write_bytes(SCENARIO)
    code, _, err = run_main(
        capsys, "submit", str(f), "--hq", "http://127.0.0.1:1", "--cannons", "2"
    )
    assert code == 1
    assert err == "error: --cannons has no meaning for a run on an HQ (it has its own)\n"
    code, _, err = run_main(capsys, "submit", str(f), "--hq", "http://h", "--summary-export", "x")
    assert (code, err) == (1, "error: --summary-export and --report need --wait\n")


def test_an_unreachable_hq_is_one_line(capsys, tmp_path):
    f = tmp_path / "s.py"
    f.write_bytes(SCENARIO)
    code, out, err = run_main(capsys, "submit", str(f), "--hq", "http://127.0.0.1:1")
    assert code == 1
    assert out == ""
    assert err.startswith("error: cannot reach the HQ at http://127.0.0.1:1")
    assert err.count("\n") == 1
    code, _, err = run_main(capsys, "runs", "--hq", "http://127.0.0.1:1")
    assert code == 1
    assert err.startswith("error: cannot reach the HQ")


def test_a_missing_file_is_one_line(capsys, tmp_path):
    code, _, err = run_main(capsys, "submit", str(tmp_path / "no.py"), "--hq", "http://h")
    assert code == 1
    assert err == f"error: {tmp_path / 'no.py'}: No such file or directory\n"


@pytest.mark.parametrize(
    ("status", "detail"),
    [
        (401, "a valid token is needed (Authorization: Bearer TOKEN)"),
        (413, "the request body is over the 100 byte limit"),
    ],
)
def test_api_errors_print_the_detail(capsys, monkeypatch, tmp_path, status, detail):
    transport = httpx.MockTransport(answer(status, {"detail": detail}))
    monkeypatch.setattr(client_http, "HQClient", functools.partial(HQClient, transport=transport))
    f = tmp_path / "s.py"
    f.write_bytes(SCENARIO)
    code, out, err = run_main(capsys, "submit", str(f), "--hq", "http://hq")
    assert (code, out, err) == (1, "", f"error: {detail}\n")


# -- against the real app, in-process -------------------------------------------------------


class InProcess(httpx.BaseTransport):
    """A sync transport onto an ASGI app: httpx.ASGITransport is async only, and the
    client is sync (and pytest here has no async plugin). One event loop per request."""

    def __init__(self, app):
        self.asgi = httpx.ASGITransport(app=app)

    def handle_request(self, request):
        async def exchange():
            response = await self.asgi.handle_async_request(request)
            body = b"".join([chunk async for chunk in response.stream])
            return httpx.Response(response.status_code, headers=response.headers, content=body)

        return asyncio.run(exchange())


@pytest.fixture
def app_client(tmp_path):
    """An HQClient factory on the real API app (no HQ thread: runs stay queued)."""

    def make(token=None, app_token=None, max_upload=10 * 1024 * 1024):
        config = ApiConfig(tmp_path / "hq.db", app_token, max_upload=max_upload)
        app = create_app(Api(config, Board()))
        # A token-less HQ answers only loopback host names (DNS rebinding).
        return HQClient("http://127.0.0.1:8081", token, transport=InProcess(app))

    return make


def test_the_real_app_upload_queue_get_list_and_stop(app_client):
    with app_client() as c:
        bundle = c.upload_bundle("s.py", SCENARIO)
        assert bundle.kind == "python"
        run_id = c.create_run({"bundle": bundle.id, "users": "2", "duration": "1s"})
        run = c.get_run(run_id)
        assert (run.status, run.scenario, run.summary) == ("queued", "s.py", None)
        assert [r.id for r in c.list_runs("queued").runs] == [run_id]
        assert c.stop_run(run_id) == "aborted"
        final = c.get_run(run_id)
        assert final.status == "aborted"
        assert exit_code(final) == 130
        assert final.summary is not None
        with pytest.raises(ApiError) as e:
            c.stop_run(run_id)
        assert e.value.status == 409


def test_the_real_app_refusals_carry_their_detail(app_client):
    with app_client() as c:
        with pytest.raises(ApiError) as e:
            c.create_run({"bundle": "nope"})
        assert (e.value.status, e.value.detail) == (404, "no bundle 'nope': upload it first")
        bundle = c.upload_bundle("s.py", SCENARIO)
        with pytest.raises(ApiError) as e:
            c.create_run({"bundle": bundle.id, "users": "abc"})
        assert e.value.status == 400
        assert "--users" in e.value.detail
        with pytest.raises(ApiError) as e:
            c.upload_bundle("prog", b"#!/bin/sh\n")
        assert e.value.status == 403
    with app_client(max_upload=100) as c, pytest.raises(ApiError) as e:
        c.upload_bundle("s.py", b"#" * 500)
    assert (e.value.status, e.value.detail) == (413, "the request body is over the 100 byte limit")


def test_the_real_app_wants_the_token(app_client):
    with app_client(app_token=TOKEN) as c, pytest.raises(ApiError) as e:
        c.list_runs()
    assert e.value.status == 401
    assert "valid token" in e.value.detail
    with app_client(token=TOKEN, app_token=TOKEN) as c:
        assert c.list_runs().runs == ()


def test_ctrl_c_while_following_asks_the_hq_to_stop(app_client, capsys):
    """The first SIGINT is a stop request, not an exception: the queued run is taken off
    the queue (aborted) and follow returns it, final."""
    with app_client() as c:
        run_id = c.create_run({"bundle": c.upload_bundle("s.py", SCENARIO).id})
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        try:
            run = submit_cli.follow(c, run_id, every=0.1)
        finally:
            timer.cancel()
    assert run.status == "aborted"
    err = capsys.readouterr().err
    assert "queued" in err
    assert f"stopping run {run_id}" in err
    assert signal.getsignal(signal.SIGINT) is not None  # the previous handler is back
