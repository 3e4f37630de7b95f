"""URL resolution, naming and splitting for the HTTP client."""

from __future__ import annotations

import pytest

from cannonade.engine.http.urls import default_name, encode_query, join, resolve, split
from cannonade.errors import ConfigError


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("http://a/x", None, "http://a/x"),
        ("HTTPS://a/x", "http://b", "HTTPS://a/x"),
        ("/x", "http://h:8080", "http://h:8080/x"),
        ("/users", "http://h/api", "http://h/api/users"),
        ("/users", "http://h/api/", "http://h/api/users"),
        ("users", "http://h/api", "http://h/api/users"),
        ("?q=1", "http://h/p", "http://h/p?q=1"),
    ],
)
def test_resolve(url: str, base: str | None, expected: str) -> None:
    assert resolve(url, base) == expected


def test_relative_without_base_names_the_url() -> None:
    with pytest.raises(ConfigError, match="/items"):
        resolve("/items", None)


@pytest.mark.parametrize(
    ("url", "name"),
    [("/a?b=1", "/a"), ("/a#frag", "/a"), ("http://h/x?y#z", "http://h/x"), ("/plain", "/plain")],
)
def test_default_name_drops_query(url: str, name: str) -> None:
    assert default_name(url) == name


def test_query_appends_and_merges() -> None:
    assert encode_query({"x": 1, "y": "two words"}) == "x=1&y=two+words"
    assert encode_query([("x", "1"), ("x", "2")]) == "x=1&x=2"
    t = split("http://h/a").with_query("x=1")
    assert (t.url, t.target) == ("http://h/a?x=1", "/a?x=1")
    t = split("http://h/a?z=0#f").with_query("x=1")
    assert (t.url, t.target) == ("http://h/a?z=0&x=1#f", "/a?z=0&x=1")
    assert split("http://h/a?").with_query("x=1").target == "/a?x=1"
    assert split("http://h/a").with_query("").target == "/a"


def test_split_origin_and_target() -> None:
    t = split("http://Example.com/p/q?x=1#frag")
    assert t.origin.host == "example.com"
    assert t.origin.port == 80
    assert t.origin.host_header == "example.com"
    assert t.target == "/p/q?x=1"
    assert t.path == "/p/q"
    assert not t.origin.tls

    t = split("https://h:8443")
    assert (t.origin.port, t.origin.host_header, t.target) == (8443, "h:8443", "/")
    assert t.origin.tls
    assert split("http://[::1]:81/").origin.host_header == "[::1]:81"
    assert split("http://h/ä b").target == "/%C3%A4%20b"


@pytest.mark.parametrize("url", ["ftp://h/x", "http:///nohost", "http://h:notaport/"])
def test_split_rejects(url: str) -> None:
    with pytest.raises(ConfigError):
        split(url)


def test_join_location() -> None:
    assert join("http://h/a/b", "/c") == "http://h/c"
    assert join("http://h/a/b", "c") == "http://h/a/c"
    assert join("http://h/a/b", "https://o/") == "https://o/"
