"""`cannonade compare` on two real runs stored in one database: run B asks the target
for a longer /delay than run A, so a tight --fail-if on p95 exits 99 and a loose one 0."""

import json
import re
import subprocess
import sys

import pytest
from conftest import cannonade_run

pytestmark = pytest.mark.e2e

SCENARIO = """
from cannonade import scenario

@scenario
async def pages(vu):
    await vu.http.get("/delay?ms={ms}")
    await vu.http.get("/")
"""


def stored_run(tmp_path, target, ms):
    scenario = tmp_path / f"delay{ms}.py"
    scenario.write_text(SCENARIO.format(ms=ms))
    r, _ = cannonade_run(tmp_path, str(scenario), "--host", target.url, "-u", "2", "-d", "2s")
    assert r.returncode == 0, r.stderr
    return re.search(r"^run (\S+) stored in ", r.stderr, re.M).group(1)


def compare(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "cannonade", "compare", *args, "--db", str(tmp_path / "runs.db")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_compare_gates_on_a_slower_run(tmp_path, target):
    a = stored_run(tmp_path, target, 5)
    b = stored_run(tmp_path, target, 40)

    tight = compare(tmp_path, a, b, "--fail-if", "p95 +10%", "--fail-if", "rps -99%")
    assert tight.returncode == 99, tight.stderr
    assert "Traceback" not in tight.stderr
    failed = [line.strip() for line in tight.stdout.splitlines() if line.strip().startswith("✗")]
    assert len(failed) == 2, tight.stdout  # the condition, then the verdict
    assert failed[0].startswith("✗ 'p95 +10%' p95: A ")
    assert ", B " in failed[0]
    assert failed[1] == "✗ FAILED: 1 of 2 conditions failed"
    assert "/delay" in tight.stdout
    assert "█ REQUESTS" in tight.stdout

    loose = compare(tmp_path, a, b, "--fail-if", "p95 +100000%", "--json")
    assert (loose.returncode, loose.stderr) == (0, "")
    doc = json.loads(loose.stdout)
    assert doc["a"]["run_id"] == a
    assert doc["b"]["run_id"] == b
    p95 = doc["overall"]["p95"]
    assert 0.005 <= p95["a"] < p95["b"]
    assert p95["b"] >= 0.040
    assert p95["relative"] > 1.0
    delay = next(r for r in doc["requests"] if r["name"] == "/delay")
    assert delay["status"] == "both"
    assert delay["values"]["p50"]["b"] > delay["values"]["p50"]["a"]
    assert doc["passed"] is True

    scoped = compare(tmp_path, a, b, "--fail-if", "p50{name:/delay} +5ms")
    assert scoped.returncode == 99
    assert "p50{name:/delay}" in scoped.stdout

    unknown = compare(tmp_path, a, "nosuchrun")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("error: no run 'nosuchrun' in ")
