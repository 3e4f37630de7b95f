"""``cannonade hq``: the long-running HQ that agents join, with its HTTP API (uploads,
the queue of runs, results). The HQ's loop runs the queue on the main thread; uvicorn
serves the API on another; they share only the database and a :class:`Board`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cannonade.errors import CannonadeError, ConfigError
from cannonade.launch.cluster import add_hq_arguments, check_port, hq_curve

if TYPE_CHECKING:
    import uvicorn

TOKEN_ENV = "CANNONADE_TOKEN"


def add_hq_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("hq", help="run the HQ that agents join, with its HTTP API")
    add_hq_arguments(p)
    api = p.add_argument_group("HTTP API")
    api.add_argument(
        "--api", default="127.0.0.1:8081", help="HOST:PORT the API listens on (go-lo's 8081)"
    )
    api.add_argument(
        "--token",
        default=None,
        help=f"the API token (visible to `ps`: prefer --token-file or ${TOKEN_ENV})",
    )
    api.add_argument("--token-file", default=None, help="a file holding the API token")
    api.add_argument(
        "--allow-exec",
        action="store_true",
        help="accept executable bundles and test runners (they run any program on the agents)",
    )
    api.add_argument(
        "--max-upload", default="10MiB", help="largest request body the API accepts (413 above)"
    )


def api_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"--api {text!r}: expected HOST:PORT")
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"--api {text!r}: the port is not a number") from None
    check_port(number, "--api")
    return host.strip("[]"), number


def read_token(args: argparse.Namespace) -> str | None:
    if args.token is not None and args.token_file is not None:
        raise ConfigError("give --token or --token-file, not both")
    token = args.token
    if args.token_file is not None:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as e:
            raise ConfigError(f"--token-file {args.token_file}: {e.strerror}") from None
    if token is None:
        token = os.environ.get(TOKEN_ENV)
    if token is not None and len(token) < 16:
        raise ConfigError("the API token must be at least 16 characters")
    return token or None


def parse_size(text: str) -> int:
    units = {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2, "b": 1}
    lowered = text.strip().lower()
    unit = next((u for u in units if lowered.endswith(u)), "")
    number, factor = lowered[: len(lowered) - len(unit)], units.get(unit, 1)
    try:
        size = int(float(number) * factor)
    except ValueError:
        raise ConfigError(f"--max-upload {text!r}: expected a size such as 10MiB") from None
    if size < 1:
        raise ConfigError(f"--max-upload {text!r} must be positive")
    return size


def hq_command(args: argparse.Namespace) -> int:
    from cannonade.api.app import create_app
    from cannonade.api.auth import check_exposure
    from cannonade.api.context import Api, ApiConfig
    from cannonade.hq.membership import Change
    from cannonade.hq.server import HQ, HQConfig, Interrupts
    from cannonade.service.board import Board
    from cannonade.service.worker import QueueRunner
    from cannonade.storage import Store

    try:
        check_port(args.publisher_port, "--publisher-port")
        check_port(args.results_port, "--results-port")
        host, port = api_address(args.api)
        token = read_token(args)
        check_exposure(host, token)
        max_upload = parse_size(args.max_upload)
        config = HQConfig(args.listen, args.publisher_port, args.results_port, hq_curve(args))
        store = Store.open(args.db)
    except CannonadeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        hq = HQ(config, store)
    except CannonadeError as e:
        store.close()
        print(f"error: {e}", file=sys.stderr)
        return 1
    interrupted = store.interrupt_unfinished(time.time())
    for run_id in interrupted:
        print(
            f"run {run_id} was in progress when the HQ stopped: marked interrupted", file=sys.stderr
        )
    queued = store.queued()
    if queued:
        print(f"{len(queued)} run(s) queued from before", file=sys.stderr)

    def show(change: Change) -> None:
        print(
            f"agent {change.name} ({change.uuid}): {change.what} [{change.status}]",
            file=sys.stderr,
            flush=True,
        )

    hq.on_change = show
    hq.on_reject = lambda text: print(f"rejected {text}", file=sys.stderr, flush=True)
    board = Board()
    api = Api(ApiConfig(store.path, token, args.allow_exec, max_upload), board)
    server = _api_server(create_app(api), host, port)
    interrupts = Interrupts()

    def on_signal(*_: object) -> None:
        interrupts.level += 1

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    thread = threading.Thread(target=server.run, name="cannonade-api", daemon=True)
    thread.start()
    try:
        bound = _wait_bound(server, thread)
        if bound is None:
            print(f"error: the API could not listen on {host}:{port}", file=sys.stderr)
            return 1
        print(
            f"cannonade hq: commands on {args.listen}:{hq.publisher_port}, "
            f"results on {args.listen}:{hq.results_port}, runs stored in {args.db}",
            file=sys.stderr,
            flush=True,
        )
        auth = "token required" if token else "no token (loopback only)"
        print(f"cannonade hq: API on http://{bound} ({auth})", file=sys.stderr, flush=True)
        QueueRunner(hq, store, board).serve(interrupts)
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        hq.close()
        store.close()
    return 0


def _api_server(app: Any, host: str, port: int) -> uvicorn.Server:
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,  # an access log would record paths, and a token is a header
        lifespan="off",
        loop="asyncio",
        # Open dashboard event streams would otherwise hold the HQ's exit.
        timeout_graceful_shutdown=1,
    )
    return uvicorn.Server(config)


def _wait_bound(
    server: uvicorn.Server, thread: threading.Thread, timeout: float = 15.0
) -> str | None:
    """The address uvicorn bound (port 0 picks one), once it is serving."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and thread.is_alive():
        if server.started:
            for s in server.servers:
                for sock in s.sockets:
                    host, port = sock.getsockname()[:2]
                    return f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        time.sleep(0.02)
    return None
