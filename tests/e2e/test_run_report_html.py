"""The HTML report of a real run: written by `cannonade run` beside its database, and
again by `cannonade report`, with the counts the target itself served."""

import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest
from conftest import cannonade_run

pytestmark = pytest.mark.e2e

SCENARIO = """
from cannonade import scenario

@scenario
async def pages(vu):
    await vu.http.get("/")
    await vu.http.get("/json")
"""


class Tables(HTMLParser):
    """Each table by class: rows of (text, data-value) cells, header row first."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tables = {}
        self._rows = None
        self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._rows = self.tables.setdefault(a["class"], [])
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th") and self._rows is not None:
            self._cell = ["", a.get("data-value")]
            self._rows[-1].append(self._cell)

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._cell = None
        elif tag == "table":
            self._rows = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data

    def counts(self):
        head, *rows = self.tables["requests"]
        i = [text for text, _ in head].index("count")
        return {row[0][0]: int(row[i][1]) for row in rows}


def test_run_writes_the_report_and_report_writes_it_again(tmp_path, target):
    scenario = tmp_path / "pages.py"
    scenario.write_text(SCENARIO)
    r, export = cannonade_run(tmp_path, str(scenario), "--host", target.url, "-u", "2", "-d", "3s")
    assert r.returncode == 0, r.stderr
    run_id = re.search(r"^run (\S+) stored in ", r.stderr, re.M).group(1)
    path = tmp_path / f"runs-{run_id}.html"
    assert f"report: {path}\n" in r.stderr
    page = Tables(path.read_text())
    counts = page.counts()
    stats = target.stats()
    assert counts == {"/": stats["paths"]["/"], "/json": stats["paths"]["/json"]}
    assert counts == {row["name"]: row["count"] for row in export["cannonade"]["requests_by_name"]}
    assert sum(counts.values()) == stats["requests"] > 0

    again = tmp_path / "again.html"
    p = subprocess.run(
        [sys.executable, "-m", "cannonade", "report", run_id[:17], "-o", str(again),
         "--db", str(tmp_path / "runs.db")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (p.returncode, p.stderr) == (0, f"report: {again}\n")
    # Rebuilt from the store, every table is the one written when the run ended; the
    # agents' last status is the one thing a later look may see differently.
    tables = Tables(again.read_text()).tables
    for name in ("requests", "trends", "counters", "rates", "status", "options"):
        assert tables[name] == page.tables[name], name


def test_no_report_and_a_chosen_path(tmp_path, target):
    scenario = tmp_path / "pages.py"
    scenario.write_text(SCENARIO)
    args = (str(scenario), "--host", target.url, "-u", "1", "--hits", "3")
    r, _ = cannonade_run(tmp_path, *args, "--no-report")
    assert r.returncode == 0, r.stderr
    assert "report:" not in r.stderr
    assert list(tmp_path.glob("*.html")) == []
    chosen = tmp_path / "chosen.html"
    r, _ = cannonade_run(tmp_path, *args, "--report", str(chosen))
    assert r.returncode == 0, r.stderr
    assert f"report: {chosen}\n" in r.stderr
    assert Tables(chosen.read_text()).counts() == {"/": 3, "/json": 3}
    assert list(tmp_path.glob("*.html")) == [chosen]
