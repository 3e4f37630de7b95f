"""examples/plugins/uppercase-extractor, built for real with componentize-py and run by
cannonade.plugins.wasm: a Python guest (CPython inside the component) importing WASI.

The build (~15 s) and wasmtime's compile of the ~18 MB component (~10 s) happen once per
session, in a temporary directory; the tests share that plugin.
"""

import importlib.util
import os
import runpy
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import cannonade_run

from cannonade.errors import PluginError
from cannonade.plugins.wasm import WasmPlugin

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        importlib.util.find_spec("componentize_py") is None,
        reason="componentize-py (the `test` extra) is not installed",
    ),
]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugins" / "uppercase-extractor"
CONFIG = '{"left": "token=", "right": ";"}'


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("uppercase") / "uppercase_extractor.wasm"
    build = runpy.run_path(str(EXAMPLE / "build.py"))["build"]
    build(out)
    cache = out.parent / "cache"
    plugin = WasmPlugin.load(out, cache_dir=cache)
    return out, cache, plugin


@pytest.mark.timeout(600)
def test_the_example_extracts_and_uppercases(built):
    _, _, plugin = built
    assert plugin.info.name == "uppercase-extractor"
    assert plugin.info.kind == "extractor"
    assert plugin.extract(b"token=abc;", [], CONFIG) == "ABC"
    assert plugin.extract(b"HTTP says token=xyz-1; rest", [("a", "b")], CONFIG) == "XYZ-1"


@pytest.mark.timeout(600)
def test_the_example_misses(built):
    _, _, plugin = built
    assert plugin.extract(b"no token here", [], CONFIG) is None
    assert plugin.extract(b"token=abc but no end", [], CONFIG) is None
    assert plugin.extract(b"token=abc;", [], "not json") is None
    with pytest.raises(PluginError, match="it has no check"):
        plugin.check(200, b"", [], 1.0, CONFIG)


@pytest.mark.timeout(600)
def test_the_example_takes_a_large_body(built):
    _, _, plugin = built
    body = b"x" * (64 * 1024) + b"token=deep;"
    assert plugin.extract(body, [], CONFIG) == "DEEP"


@pytest.mark.timeout(600)
def test_the_example_loads_from_the_cache_the_second_time(built):
    out, cache, first = built
    assert not first.from_cache
    again = WasmPlugin.load(out, cache_dir=cache)
    assert again.from_cache
    assert again.sha256 == first.sha256
    assert again.extract(b"token=abc;", [], CONFIG) == "ABC"


def test_the_manifest_matches_the_plugin():
    manifest = tomllib.loads((EXAMPLE / "plugin.toml").read_text())["plugin"]
    assert manifest["name"] == "uppercase-extractor"
    assert manifest["kind"] == "extractor"
    assert manifest["type"] == "wasm"
    assert manifest["entry"] == "uppercase_extractor.wasm"


LOGIN_THROUGH_WASM = """
name: login-through-wasm
defaults: { http: { base_url: "http://127.0.0.1:1" } }
plugins:
  - { name: uppercase-extractor }   # installed on the agents (too big to ship with a plan)
scenarios:
  members:
    executor: per-vu-iterations
    vus: 2
    iterations: 2
    flow:
      - request:
          name: login
          method: POST
          url: /login
          body: { json: { username: "ada" } }
          extract:
            - type: plugin
              plugin: uppercase-extractor
              name: token
              config: { left: '"token":"', right: '"', upper: false }
      - request:
          name: private
          url: /private
          headers: { Authorization: "Bearer ${token}" }
          checks: [ { type: status, equals: 200 } ]
thresholds:
  checks: ["rate==1"]
"""


@pytest.mark.timeout(600)
def test_a_login_plan_takes_its_token_through_the_wasm_extractor(built, tmp_path, target):
    # The plugin is installed (cannonade plugin install) where the agents look for
    # plugins; the plan names it, the cannons load it, the token flows to /private.
    out, _, _ = built
    plugin_dir = tmp_path / "src"
    plugin_dir.mkdir()
    shutil.copy(EXAMPLE / "plugin.toml", plugin_dir / "plugin.toml")
    shutil.copy(out, plugin_dir / "uppercase_extractor.wasm")
    env = dict(
        os.environ,
        CANNONADE_PLUGIN_DIR=str(tmp_path / "plugins"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "cannonade",
            "plugin",
            "install",
            str(plugin_dir),
            "--allow-untrusted",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert installed.returncode == 0, installed.stderr
    plan = tmp_path / "login.yaml"
    plan.write_text(LOGIN_THROUGH_WASM)
    r, s = cannonade_run(
        tmp_path, str(plan), "--host", target.url, "--cannons", "1", env=env, timeout=300
    )
    assert r.returncode == 0, r.stderr
    m = s["metrics"]
    assert m["checks"]["passes"] == 4
    assert target.stats()["paths"]["/private"] == 4
