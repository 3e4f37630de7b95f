"""loads-style test classes run as they did: `cannonade run module.Class.test_x`, with
self.session (every call a hit), self.incr_counter, and unittest assertions."""

import os

import pytest
from conftest import cannonade_run

pytestmark = pytest.mark.e2e

MODULE = """
import os

from loads.case import TestCase

TARGET = os.environ["TARGET"]


class TestWebSite(TestCase):
    def test_ok(self):
        res = self.session.get(TARGET + "/json")
        self.assertEqual(res.status_code, 200)
        self.assertIn("hello", res.text.lower() + "hello")
        self.incr_counter("visits")

    def test_fail(self):
        res = self.session.get(TARGET + "/status/404")
        self.assertEqual(res.status_code, 200)

    def test_error(self):
        self.session.get(TARGET + "/json")
        raise KeyError("no such thing")
"""


def run(tmp_path, target, test, *args):
    (tmp_path / "example.py").write_text(MODULE)
    env = dict(os.environ, TARGET=target.url)
    return cannonade_run(tmp_path, test, *args, env=env, cwd=tmp_path)


def test_a_passing_test_counts_hits_tests_and_counters(tmp_path, target):
    r, s = run(tmp_path, target, "example.TestWebSite.test_ok", "-u", "2:3", "--hits", "2")
    assert r.returncode == 0, r.stderr
    m = s["metrics"]
    assert m["iterations"]["count"] == 10
    assert m["http_reqs"]["count"] == target.stats()["requests"] == 10
    assert m["tests_started"]["count"] == 10
    assert m["tests_passed"]["count"] == 10
    assert m["visits"]["count"] == 10


def test_failures_and_errors_are_told_apart(tmp_path, target):
    r, s = run(tmp_path, target, "example.TestWebSite.test_fail", "-u", "2", "--hits", "2")
    assert r.returncode == 0, r.stderr
    m = s["metrics"]
    assert m["tests_failed"]["count"] == 4
    assert m["http_reqs"]["count"] == target.stats()["requests"] == 4
    errors = {e["kind"]: e for e in s["cannonade"]["errors"]}
    assert errors["AssertionError"]["count"] == 4
    assert "404 != 200" in errors["AssertionError"]["message"]
    assert "test_fail" in errors["AssertionError"]["sample"]
    target.reset()
    r, s = run(tmp_path, target, "example.TestWebSite.test_error", "-u", "1", "--hits", "3")
    assert r.returncode == 0, r.stderr
    assert s["metrics"]["tests_errored"]["count"] == 3
    assert {e["kind"] for e in s["cannonade"]["errors"]} == {"KeyError"}


def test_an_unknown_test_is_refused_before_any_load(tmp_path, target):
    r, s = run(tmp_path, target, "example.TestWebSite.test_nothing", "--hits", "1")
    assert r.returncode == 1
    assert "has no method test_nothing" in r.stderr
    assert s is None
