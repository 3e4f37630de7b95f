"""CURVE keys and the HQ's gatekeeper: files, errors that name them, and handshakes."""

import stat
import subprocess
import sys
import time

import pytest
import zmq
import zmq.auth

from cannonade.cli.main import main
from cannonade.errors import ConfigError
from cannonade.transport.security import Curve, client_curve, generate, server_curve
from cannonade.transport.sockets import Transport


# -- generate -----------------------------------------------------------------------------
def test_generate_writes_a_public_and_a_private_certificate(tmp_path):
    public, secret = generate(tmp_path / "keys", "hq")
    assert public == tmp_path / "keys" / "hq.key"
    assert secret == tmp_path / "keys" / "hq.key_secret"
    pub_of_public, sec_of_public = zmq.auth.load_certificate(str(public))
    pub_of_secret, sec_of_secret = zmq.auth.load_certificate(str(secret))
    assert sec_of_public is None  # the file to hand out holds no secret
    assert pub_of_public == pub_of_secret
    assert sec_of_secret is not None
    assert len(pub_of_public) == len(sec_of_secret) == 40  # z85 of 32 bytes
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_generate_makes_a_different_pair_each_time(tmp_path):
    a, _ = generate(tmp_path, "a")
    b, _ = generate(tmp_path, "b")
    assert zmq.auth.load_certificate(str(a))[0] != zmq.auth.load_certificate(str(b))[0]


@pytest.mark.parametrize("existing", ["hq.key", "hq.key_secret"])
def test_generate_refuses_to_overwrite_either_file(tmp_path, existing):
    (tmp_path / existing).write_text("precious\n")
    with pytest.raises(ConfigError, match="refusing to overwrite") as e:
        generate(tmp_path, "hq")
    assert existing in str(e.value)
    assert (tmp_path / existing).read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]  # nothing else written


def test_generate_twice_keeps_the_first_pair(tmp_path):
    public, secret = generate(tmp_path, "hq")
    before = (public.read_bytes(), secret.read_bytes())
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        generate(tmp_path, "hq")
    assert (public.read_bytes(), secret.read_bytes()) == before


@pytest.mark.parametrize("name", ["", "a/b", "../hq", ".hidden", ".", ".."])
def test_generate_rejects_names_that_are_not_plain_file_names(tmp_path, name):
    with pytest.raises(ConfigError, match="plain file name"):
        generate(tmp_path / "keys", name)
    assert not (tmp_path / "keys").exists()


# -- loading: every error names its file --------------------------------------------------
@pytest.fixture
def keys(tmp_path):
    d = tmp_path / "keys"
    generate(d, "hq")
    generate(d, "agent")
    allow = tmp_path / "allow"
    allow.mkdir()
    (allow / "agent.key").write_bytes((d / "agent.key").read_bytes())
    return d, allow


def test_server_curve_loads_its_key_and_the_allow_list(keys):
    d, allow = keys
    curve = server_curve(str(d / "hq.key_secret"), str(allow))
    hq_public, hq_secret = zmq.auth.load_certificate(str(d / "hq.key_secret"))
    agent_public, _ = zmq.auth.load_certificate(str(d / "agent.key"))
    assert (curve.public, curve.secret) == (hq_public, hq_secret)
    assert curve.allowed == frozenset({agent_public})


def test_client_curve_pins_the_hq(keys):
    d, _ = keys
    curve = client_curve(str(d / "agent.key_secret"), str(d / "hq.key"))
    assert curve.server_public == zmq.auth.load_certificate(str(d / "hq.key"))[0]
    assert curve.public == zmq.auth.load_certificate(str(d / "agent.key"))[0]


def test_server_curve_names_a_missing_secret_file(keys, tmp_path):
    _, allow = keys
    missing = tmp_path / "nope.key_secret"
    with pytest.raises(ConfigError, match="not a readable CURVE certificate") as e:
        server_curve(str(missing), str(allow))
    assert str(missing) in str(e.value)


def test_server_curve_refuses_a_public_file_as_its_secret(keys):
    d, allow = keys
    with pytest.raises(ConfigError, match="holds no secret key") as e:
        server_curve(str(d / "hq.key"), str(allow))
    assert str(d / "hq.key") in str(e.value)


def test_server_curve_refuses_an_empty_allow_dir(keys, tmp_path):
    d, _ = keys
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=r"holds no \*\.key") as e:
        server_curve(str(d / "hq.key_secret"), str(empty))
    assert "--curve-allow" in str(e.value)
    assert str(empty) in str(e.value)


def test_secret_files_in_the_allow_dir_do_not_count_as_allowed(keys, tmp_path):
    d, _ = keys
    only_secret = tmp_path / "only-secret"
    only_secret.mkdir()
    (only_secret / "agent.key_secret").write_bytes((d / "agent.key_secret").read_bytes())
    with pytest.raises(ConfigError, match=r"holds no \*\.key"):
        server_curve(str(d / "hq.key_secret"), str(only_secret))


def test_server_curve_refuses_a_missing_allow_dir(keys, tmp_path):
    d, _ = keys
    with pytest.raises(ConfigError, match="not a directory") as e:
        server_curve(str(d / "hq.key_secret"), str(tmp_path / "absent"))
    assert str(tmp_path / "absent") in str(e.value)


def test_server_curve_names_a_corrupt_file_in_the_allow_dir(keys):
    d, allow = keys
    bad = allow / "garbage.key"
    bad.write_text("not a certificate\n")
    with pytest.raises(ConfigError) as e:
        server_curve(str(d / "hq.key_secret"), str(allow))
    assert str(bad) in str(e.value)


def test_client_curve_names_a_missing_secret_file(keys, tmp_path):
    d, _ = keys
    missing = tmp_path / "agent.key_secret"
    with pytest.raises(ConfigError) as e:
        client_curve(str(missing), str(d / "hq.key"))
    assert str(missing) in str(e.value)


def test_client_curve_refuses_a_public_file_as_its_secret(keys):
    d, _ = keys
    with pytest.raises(ConfigError, match="holds no secret key") as e:
        client_curve(str(d / "agent.key"), str(d / "hq.key"))
    assert str(d / "agent.key") in str(e.value)


def test_client_curve_names_a_missing_hq_key(keys, tmp_path):
    d, _ = keys
    missing = tmp_path / "hq.key"
    with pytest.raises(ConfigError) as e:
        client_curve(str(d / "agent.key_secret"), str(missing))
    assert str(missing) in str(e.value)


# -- handshakes through the real sockets --------------------------------------------------
def _deliver(server: Curve, client: Curve, timeout: float = 3.0):
    """Bind a CURVE PULL, connect a PUSH with ``client``, and try to deliver one frame.
    Returns (the frame received or None, the gatekeeper's refusals by key)."""
    hq, agent = Transport(), Transport()
    gatekeeper = hq.secure(server)
    try:
        pull = hq.bind("pull", "127.0.0.1", 0, server)
        push = agent.connect("push", "127.0.0.1", pull.port, client)
        got = None
        deadline = time.monotonic() + timeout
        while got is None and time.monotonic() < deadline:
            push.send(b"hello")  # IMMEDIATE: refused until a handshake succeeds
            time.sleep(0.05)
            got = pull.recv()
        push.close()
        pull.close()
        return got, dict(gatekeeper.refusals.by_key)
    finally:
        gatekeeper.stop()
        agent.close()
        hq.close()


@pytest.fixture
def curves(tmp_path):
    d = tmp_path / "keys"
    for name in ("hq", "agent", "rogue", "other-hq"):
        generate(d, name)
    allow = tmp_path / "allow"
    allow.mkdir()
    (allow / "agent.key").write_bytes((d / "agent.key").read_bytes())
    server = server_curve(str(d / "hq.key_secret"), str(allow))

    def client(name, hq="hq"):
        return client_curve(str(d / f"{name}.key_secret"), str(d / f"{hq}.key"))

    return server, client


def test_an_allowed_key_gets_through(curves):
    server, client = curves
    got, refusals = _deliver(server, client("agent"), timeout=3.0)
    assert got == b"hello"
    assert refusals == {}


def test_an_unknown_key_is_refused_and_counted(curves):
    server, client = curves
    rogue = client("rogue")
    got, refusals = _deliver(server, rogue, timeout=1.5)
    assert got is None
    assert set(refusals) == {rogue.public.decode()}
    assert refusals[rogue.public.decode()] >= 1


def test_an_unknown_key_delivers_nothing(curves):
    server, client = curves
    got, _ = _deliver(server, client("rogue"), timeout=1.5)
    assert got is None


def test_a_client_pinning_another_hq_delivers_nothing(curves):
    server, client = curves
    # The agent's own key is allowed; it is the HQ's key it pinned that is wrong.
    got, refusals = _deliver(server, client("agent", hq="other-hq"), timeout=1.5)
    assert got is None
    assert refusals == {}  # it never got as far as the allow-list


# -- the command line ---------------------------------------------------------------------
def test_keys_generate_command(tmp_path, capsys):
    d = tmp_path / "k"
    assert main(["keys", "generate", "agent-b", "--dir", str(d)]) == 0
    out = capsys.readouterr().out
    assert str(d / "agent-b.key") in out
    assert str(d / "agent-b.key_secret") in out
    assert stat.S_IMODE((d / "agent-b.key_secret").stat().st_mode) == 0o600
    assert zmq.auth.load_certificate(str(d / "agent-b.key_secret"))[1] is not None


def test_keys_generate_command_refuses_to_overwrite(tmp_path, capsys):
    assert main(["keys", "generate", "hq", "--dir", str(tmp_path)]) == 0
    before = (tmp_path / "hq.key_secret").read_bytes()
    capsys.readouterr()
    assert main(["keys", "generate", "hq", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "refusing to overwrite" in err
    assert (tmp_path / "hq.key_secret").read_bytes() == before


def test_keys_generate_command_rejects_a_path_as_name(tmp_path, capsys):
    assert main(["keys", "generate", "../hq", "--dir", str(tmp_path)]) == 1
    assert "plain file name" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_keys_generate_as_a_real_process(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "cannonade", "keys", "generate", "hq", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "hq.key").is_file()
    assert stat.S_IMODE((tmp_path / "hq.key_secret").stat().st_mode) == 0o600
