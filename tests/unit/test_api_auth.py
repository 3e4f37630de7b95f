"""cannonade.api.auth in isolation: reading the token from a header, comparing it in
constant time, refusing an exposed API without one, and the two ASGI middlewares
(driven by hand, no server)."""

from __future__ import annotations

import asyncio
import base64
import hmac

import pytest

from cannonade.api import auth
from cannonade.api.auth import BodyLimit, TokenGate, check_exposure, presented, token_matches
from cannonade.errors import ConfigError

TOKEN = "s3cret-token-0123456789"


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


# -- presented() -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (f"Bearer {TOKEN}", TOKEN.encode()),
        (f"bearer {TOKEN}", TOKEN.encode()),
        (f"BEARER {TOKEN}", TOKEN.encode()),
        (f"  Bearer   {TOKEN}  ", TOKEN.encode()),
        ("Bearer a b", b"a b"),  # the rest of the header, as it is
    ],
)
def test_presented_reads_a_bearer_token(header, token):
    assert presented(header) == token


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (f"Basic {b64('x:' + TOKEN)}", TOKEN.encode()),
        (f"basic {b64('x:' + TOKEN)}", TOKEN.encode()),
        (f"Basic {b64(':' + TOKEN)}", TOKEN.encode()),  # no user name
        (f"Basic {b64(f'{TOKEN}:{TOKEN}')}", TOKEN.encode()),
        (f"Basic {b64('user:pa:ss')}", b"pa:ss"),  # the password may hold colons
        (f"Basic {b64('user:')}", b""),  # an empty password: presented, and matches nothing
        (f"Basic {b64(b'u:' + bytes(range(128, 256)))}", bytes(range(128, 256))),
    ],
)
def test_presented_reads_the_basic_password_whatever_the_user(header, token):
    assert presented(header) == token


@pytest.mark.parametrize(
    "header",
    [
        "",
        "   ",
        "Bearer",
        "Bearer ",
        "Basic",
        "Basic ",
        TOKEN,  # no scheme
        f"Token {TOKEN}",
        f"Digest username=x, response={TOKEN}",
        f"Bearer{TOKEN}",  # no space: one word, an unknown scheme
        f"Basic {b64(TOKEN)}",  # no colon: a user name alone, no password
        "Basic !!!not-base64!!!",
        f"Basic {b64('x:' + TOKEN)[:-2]}",  # truncated base64
        "Basic ü",
        "\x00\x01\x02",
    ],
)
def test_presented_finds_no_token_in_garbage(header):
    got = presented(header)
    assert got is None or got != TOKEN.encode()


def test_presented_refuses_base64_with_junk_inside():
    assert presented(f"Basic {b64('x:' + TOKEN)[:8]}*{b64('x:' + TOKEN)[8:]}") is None


# -- token_matches() ---------------------------------------------------------------


@pytest.fixture
def digests(monkeypatch):
    """Every call of hmac.compare_digest made through cannonade.api.auth."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", recording)
    return calls


def test_token_matches_compares_with_hmac_compare_digest(digests):
    assert token_matches(TOKEN.encode(), f"Bearer {TOKEN}")
    assert digests == [(TOKEN.encode(), TOKEN.encode())]


@pytest.mark.parametrize(
    "wrong",
    [
        "x" + TOKEN[1:],  # first character differs
        TOKEN[:-1] + "x",  # last character differs
        TOKEN[:-1],  # a prefix: shorter
        TOKEN + "x",  # longer
        "",
    ],
)
def test_a_wrong_token_is_refused_by_compare_digest_too(digests, wrong):
    # No shortcut (==, startswith, a length check) decides before compare_digest does.
    assert not token_matches(TOKEN.encode(), f"Basic {b64('user:' + wrong)}")
    assert digests == [(wrong.encode(), TOKEN.encode())]


def test_a_header_without_a_token_never_reaches_the_comparison(digests):
    assert not token_matches(TOKEN.encode(), "")
    assert not token_matches(TOKEN.encode(), f"Token {TOKEN}")
    assert digests == []


def test_token_matches_accepts_bearer_and_basic_and_nothing_else():
    expected = TOKEN.encode()
    assert token_matches(expected, f"Bearer {TOKEN}")
    assert token_matches(expected, f"Basic {b64('anyone:' + TOKEN)}")
    assert not token_matches(expected, f"Bearer {TOKEN.upper()}")
    assert not token_matches(expected, f"Basic {b64(TOKEN + ':x')}")
    assert not token_matches(expected, TOKEN)


def test_the_module_uses_no_plain_comparison_of_the_token():
    # A regression guard: token_matches must not grow an early `==` on the secret.
    import inspect

    source = inspect.getsource(token_matches)
    assert "compare_digest" in source
    assert "==" not in source


# -- check_exposure() --------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.53", "127.255.255.254", "::1", "[::1]", "localhost"]
)
def test_loopback_needs_no_token(host):
    check_exposure(host, None)


@pytest.mark.parametrize(
    "host",
    [
        "0.0.0.0",
        "::",
        "[::]",
        "10.0.0.5",
        "192.168.1.20",
        "203.0.113.7",
        "fe80::1",
        "::ffff:127.0.0.1",  # IPv4-mapped: refused rather than guessed
        "example.com",
        "my-host",
        "LOCALHOST.",
        "127.1",  # not an address ipaddress reads: refused
    ],
)
def test_anything_else_needs_a_token(host):
    with pytest.raises(ConfigError, match="needs a token") as e:
        check_exposure(host, None)
    assert host in str(e.value)
    assert "--token-file" in str(e.value)
    assert "CANNONADE_TOKEN" in str(e.value)


@pytest.mark.parametrize("token", [None, ""])
def test_an_empty_token_is_no_token(token):
    with pytest.raises(ConfigError):
        check_exposure("0.0.0.0", token)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "example.com", "127.0.0.1"])
def test_any_host_is_allowed_with_a_token(host):
    check_exposure(host, TOKEN)


# -- the middlewares, driven by hand --------------------------------------------


class Inner:
    """An ASGI app that records whether it was called and reads the whole body."""

    def __init__(self) -> None:
        self.calls = 0
        self.body = b""

    async def __call__(self, scope, receive, send):
        self.calls += 1
        if scope["type"] == "http":
            while True:
                message = await receive()
                self.body += message.get("body", b"")
                if not message.get("more_body", False):
                    break
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        elif scope["type"] == "websocket":
            await send({"type": "websocket.accept"})


def drive(app, scope, messages=()):
    """Call ``app`` once; what it sent, and how many messages it received."""
    sent: list[dict] = []
    pending = list(messages)
    received = 0

    async def receive():
        nonlocal received
        received += 1
        if pending:
            return pending.pop(0)
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent, received


def http(headers=(), method="POST"):
    return {"type": "http", "method": method, "path": "/upload", "headers": list(headers)}


BODY = [{"type": "http.request", "body": b"x" * 100, "more_body": False}]


def test_the_gate_refuses_without_reading_the_body_or_calling_the_app():
    inner = Inner()
    sent, received = drive(TokenGate(inner, TOKEN), http(), BODY)
    assert inner.calls == 0
    assert received == 0
    assert sent[0]["status"] == 401
    for challenge in auth.CHALLENGES:
        assert challenge in sent[0]["headers"]
    assert TOKEN.encode() not in sent[1]["body"]


def test_the_gate_lets_the_token_through():
    inner = Inner()
    headers = [(b"authorization", f"Bearer {TOKEN}".encode())]
    sent, _ = drive(TokenGate(inner, TOKEN), http(headers), BODY)
    assert inner.calls == 1
    assert inner.body == b"x" * 100
    assert sent[0]["status"] == 200


def test_the_gate_reads_only_the_first_authorization_header():
    inner = Inner()
    headers = [(b"authorization", b"Bearer wrong"), (b"authorization", f"Bearer {TOKEN}".encode())]
    sent, _ = drive(TokenGate(inner, TOKEN), http(headers), BODY)
    assert sent[0]["status"] == 401
    assert inner.calls == 0


def test_without_a_token_the_gate_is_open():
    inner = Inner()
    sent, _ = drive(TokenGate(inner, None), http(), BODY)
    assert sent[0]["status"] == 200


def test_a_websocket_without_the_token_never_reaches_the_app():
    inner = Inner()
    scope = {"type": "websocket", "path": "/live", "headers": []}
    sent, _ = drive(TokenGate(inner, TOKEN), scope, [{"type": "websocket.connect"}])
    assert inner.calls == 0
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_a_websocket_with_the_token_reaches_the_app():
    inner = Inner()
    headers = [(b"authorization", f"Basic {b64('x:' + TOKEN)}".encode())]
    scope = {"type": "websocket", "path": "/live", "headers": headers}
    sent, _ = drive(TokenGate(inner, TOKEN), scope, [{"type": "websocket.connect"}])
    assert inner.calls == 1
    assert sent == [{"type": "websocket.accept"}]


def test_the_lifespan_passes_the_gate():
    inner = Inner()
    drive(TokenGate(inner, TOKEN), {"type": "lifespan"})
    assert inner.calls == 1


def test_the_body_limit_refuses_a_declared_length_without_reading():
    inner = Inner()
    scope = http([(b"content-length", b"101")])
    sent, received = drive(BodyLimit(inner, 100), scope, BODY)
    assert received == 0
    assert inner.calls == 0
    assert sent[0]["status"] == 413
    assert (b"connection", b"close") in sent[0]["headers"]


def test_the_body_limit_counts_a_chunked_body_as_it_arrives():
    inner = Inner()
    chunks = [{"type": "http.request", "body": b"x" * 40, "more_body": True}] * 10
    sent, received = drive(BodyLimit(inner, 100), http(), chunks)
    assert received == 3  # 120 bytes > 100: it stops reading there
    assert inner.calls == 0
    assert sent[0]["status"] == 413


def test_the_body_limit_passes_a_body_at_the_limit_whole():
    inner = Inner()
    chunks = [
        {"type": "http.request", "body": b"x" * 60, "more_body": True},
        {"type": "http.request", "body": b"y" * 40, "more_body": False},
    ]
    sent, _ = drive(BodyLimit(inner, 100), http([(b"content-length", b"100")]), chunks)
    assert inner.calls == 1
    assert inner.body == b"x" * 60 + b"y" * 40
    assert sent[0]["status"] == 200


def test_the_body_limit_ignores_a_content_length_that_is_not_a_number():
    inner = Inner()
    big = [{"type": "http.request", "body": b"x" * 101, "more_body": False}]
    sent, _ = drive(BodyLimit(inner, 100), http([(b"content-length", b"lots")]), big)
    assert sent[0]["status"] == 413  # still counted
    assert inner.calls == 0


@pytest.mark.parametrize(
    ("host", "origin", "status"),
    [
        ("127.0.0.1:8081", None, 200),
        ("localhost:8081", None, 200),
        ("[::1]:8081", None, 200),
        ("127.0.0.2", None, 200),
        ("rebind.attacker.example:8081", None, 403),  # DNS rebinding
        ("10.0.0.5:8081", None, 403),
        ("127.0.0.1:8081", "http://127.0.0.1:8081", 200),
        ("127.0.0.1:8081", "http://localhost:3000", 200),
        ("127.0.0.1:8081", "http://attacker.example", 403),  # a cross-site post
        ("127.0.0.1:8081", "null", 403),
    ],
)
def test_a_tokenless_gate_answers_loopback_hosts_from_no_other_site(host, origin, status):
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    sent, _ = drive(TokenGate(Inner(), None), http(headers), BODY)
    assert sent[0]["status"] == status
