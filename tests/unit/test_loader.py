import textwrap

import pytest

from cannonade.errors import ScenarioError
from cannonade.scenarios.bundle import Bundle
from cannonade.scenarios.loader import load_bundle, load_path


def write(tmp_path, body, name="scn.py"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(body))
    return p


def test_loads_scenarios_with_weights_and_hooks(tmp_path):
    p = write(
        tmp_path,
        """
        from cannonade import scenario, setup, vu_setup

        thresholds = {"http_req_duration": ["p(95)<200"]}

        @setup
        async def s(vu):
            return 1

        @vu_setup
        async def v(vu):
            pass

        @scenario(weight=3)
        async def a(vu):
            pass

        @scenario
        async def b(vu):
            pass
        """,
    )
    loaded = load_path(p)
    assert [(s.name, s.weight) for s in loaded.scenarios] == [("a", 3.0), ("b", 1.0)]
    assert loaded.setup is not None
    assert loaded.vu_setup is not None
    assert loaded.thresholds == ("http_req_duration:p(95)<200",)


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        ("x = 1\ndef broken(:\n    pass\n", 2, "SyntaxError"),
        ("import no_such_module_xyz\n", 1, "ModuleNotFoundError"),
        ("x = 1\nraise RuntimeError('boom')\n", 2, "RuntimeError while importing: boom"),
        (
            "from cannonade import scenario\n\n@scenario\ndef sync(vu):\n    pass\n",
            3,
            "must be a coroutine",
        ),
        (
            "from cannonade import scenario\n\n@scenario\nasync def two(vu, extra):\n    pass\n",
            3,
            "wrong signature",
        ),
        (
            "from cannonade import scenario\n\n@scenario\nasync def none():\n    pass\n",
            3,
            "wrong signature",
        ),
    ],
)
def test_bad_files_name_file_and_line(tmp_path, body, line, reason):
    p = tmp_path / "bad.py"
    p.write_text(body)
    with pytest.raises(ScenarioError) as info:
        load_path(p)
    assert info.value.where is not None
    assert info.value.where.endswith(f"bad.py:{line}"), info.value.where
    assert reason in str(info.value)


def test_no_scenario(tmp_path):
    p = write(tmp_path, "x = 1\n")
    with pytest.raises(ScenarioError, match="no scenario found"):
        load_path(p)


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_path(tmp_path / "nope.py")


def test_bad_weight(tmp_path):
    p = write(
        tmp_path,
        "from cannonade import scenario\n\n@scenario(weight=0)\nasync def a(vu):\n    pass\n",
    )
    with pytest.raises(ScenarioError, match="weight"):
        load_path(p)


def test_bundle_round_trip_and_tamper(tmp_path):
    p = write(tmp_path, "from cannonade import scenario\n\n@scenario\nasync def a(vu):\n    pass\n")
    bundle = Bundle.from_path(p)
    (tmp_path / "w").mkdir()
    loaded = load_bundle(bundle, workdir=tmp_path / "w")
    assert loaded.sha256 == bundle.sha256
    bad = Bundle(bundle.filename, bundle.data + b"#", bundle.sha256)
    with pytest.raises(ScenarioError, match="corrupt"):
        load_bundle(bad)
