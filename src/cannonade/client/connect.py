"""Where the HQ's API is and which token to send, from ``--hq URL``, ``--token-file``,
credentials in the URL (``http://user:TOKEN@host:8081``) or ``$CANNONADE_TOKEN``."""

from __future__ import annotations

import argparse
import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

from cannonade.errors import ConfigError

TOKEN_ENV = "CANNONADE_TOKEN"  # the variable ``cannonade hq`` reads its token from


def add_hq_url_arguments(p: argparse.ArgumentParser, *, required: bool) -> None:
    """``--hq URL`` and ``--token-file FILE``, for the commands that talk to an HQ's API."""
    p.add_argument(
        "--hq",
        required=required,
        default=None,
        metavar="URL",
        help="the HQ's API, e.g. http://HOST:8081 (a token may be its password: http://x:TOKEN@...)",
    )
    p.add_argument(
        "--token-file",
        default=None,
        metavar="FILE",
        help=f"a file holding the API token (else the URL's password, else ${TOKEN_ENV})",
    )


def hq_address(
    url: str, token_file: str | None = None, env: Mapping[str, str] | None = None
) -> tuple[str, str | None]:
    """The API's base URL, without credentials, and the token to send (None: none).

    The token comes from, in order: ``token_file``, the URL's password, ``$CANNONADE_TOKEN``.
    Error messages never repeat the URL as given: it may hold the token.
    """
    text = url.strip()
    if "://" not in text:
        text = "http://" + text  # HOST:PORT alone, as `cannonade hq --api` takes it
    parts = urllib.parse.urlsplit(text)
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--hq: expected http://HOST:PORT, got a URL for {host or 'no host'}")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number or out of range
    except ValueError:
        raise ConfigError(f"--hq: the port of {host} is not valid") from None
    base = urllib.parse.urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
    if token_file is not None:
        return base, _read_token(token_file)
    if parts.password:
        return base, urllib.parse.unquote(parts.password)
    token = (os.environ if env is None else env).get(TOKEN_ENV, "").strip()
    return base, token or None


def _read_token(path: str) -> str:
    try:
        token = Path(path).read_text().strip()
    except OSError as e:
        raise ConfigError(f"--token-file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--token-file {path}: not a text file") from None
    if not token:
        raise ConfigError(f"--token-file {path} is empty")
    return token
