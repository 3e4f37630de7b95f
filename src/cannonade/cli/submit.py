"""``cannonade submit FILE --hq URL``: upload a test to an HQ's API, queue a run of it
with ``cannonade run``'s options, and (``--wait``) follow it to its end and exit as
``cannonade run`` would. Also ``cannonade runs --hq URL``, the remote run list.

httpx is imported only when a command runs: this module is read while the command
line is parsed, for every ``cannonade`` command.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cannonade.client.connect import add_hq_url_arguments, hq_address
from cannonade.errors import CannonadeError, ConfigError
from cannonade.launch.options import add_run_arguments

if TYPE_CHECKING:
    from cannonade.client.http import HQClient, RemoteRun

EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 130
POLL_EVERY = 1.0  # seconds between looks at a run being followed
UNREACHABLE_FOR = 30.0  # an HQ silent this long while a run is followed is given up on

# `cannonade run` options that are about running the HQ and agents here; the HQ that
# takes the run has its own. Hidden from `submit --help`, and refused if given.
LOCAL_ONLY = {
    "exec": "--exec (upload the program as FILE; its arguments go in --exec-args)",
    "listen": "--listen",
    "publisher_port": "--publisher-port",
    "results_port": "--results-port",
    "db": "--db",
    "curve_key": "--curve-key",
    "curve_allow": "--curve-allow",
    "cannons": "--cannons",
    "local_agents": "--local-agents",
    "wait_agents": "--wait-agents",
    # Written from a stored run: here, `cannonade show RUN_ID --out ... --junit ...`
    # on the HQ's database writes them.
    "out": "--out (run `cannonade show RUN_ID --out ...` where the database is)",
    "junit": "--junit (run `cannonade show RUN_ID --junit ...` where the database is)",
}


def add_submit_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "submit",
        help="upload a test to an HQ's API and queue a run of it (--wait: follow it)",
        description="Upload FILE to the HQ, queue a run of it and print the run's id.",
    )
    p.add_argument(
        "file", metavar="FILE", help="a .py scenario, an executable, or a .tar.gz/.tgz/.zip"
    )
    add_hq_url_arguments(p, required=True)
    remote = p.add_argument_group("the remote run")
    remote.add_argument(
        "--wait", action="store_true", help="follow the run to its end; exit as `cannonade run`"
    )
    remote.add_argument("--name", default=None, help="a label for the run")
    remote.add_argument("--entry", default=None, help="the file to run, in an archive FILE")
    remote.add_argument("--test", default=None, help="the test --test-runner runs ({test})")
    remote.add_argument(
        "--exec-args", default=None, metavar="'ARGS'", help="an executable FILE's arguments"
    )
    add_run_arguments(p)
    remote_help = {
        "report": "write the run's HTML report, fetched from the HQ (with --wait)",
        "summary_export": "write the run's k6-style summary JSON (with --wait)",
        "quiet": "no progress lines while waiting",
    }
    for action in p._actions:
        if action.dest in LOCAL_ONLY or action.dest == "no_report":
            action.help = argparse.SUPPRESS
        action.help = remote_help.get(action.dest, action.help)
    # None marks "not given", so a local-only option is refused only when it was.
    p.set_defaults(**dict.fromkeys(LOCAL_ONLY))


def run_request(args: argparse.Namespace, bundle_id: str) -> dict[str, Any]:
    """The JSON body of POST /api/v1/runs: only the fields given (the API has the
    same defaults as ``cannonade run``)."""
    exec_args = None
    if args.exec_args is not None:
        try:
            exec_args = shlex.split(args.exec_args)
        except ValueError as e:
            raise ConfigError(f"--exec-args: {e}") from None
    fields: dict[str, Any] = {
        "bundle": bundle_id,
        "entry": args.entry,
        "name": args.name,
        "users": args.users,
        "duration": args.duration,
        "hits": args.hits,
        "rampup": args.rampup,
        "stages": args.stages,
        "iterations": args.iterations,
        "rate": args.rate,
        "rate_stages": args.rate_stages,
        "max_vus": args.max_vus,
        "pre_vus": args.pre_vus,
        "graceful_stop": args.graceful_stop,
        "max_duration": args.max_duration,
        "seed": args.seed,
        "host": args.host,
        "timeout": args.timeout,
        "connect_timeout": args.connect_timeout,
        "follow_redirects": args.follow_redirects,
        "insecure": args.insecure,
        "headers": args.header,
        "thresholds": args.threshold,
        "min_agents": args.min_agents,
        "test_runner": args.test_runner,
        "test": args.test,
        "exec_args": exec_args,
    }
    return {k: v for k, v in fields.items() if v is not None}


def _check(args: argparse.Namespace) -> None:
    for dest, option in LOCAL_ONLY.items():
        if getattr(args, dest) is not None:
            raise ConfigError(f"{option} has no meaning for a run on an HQ (it has its own)")
    if not args.wait and (args.summary_export or args.report):
        raise ConfigError("--summary-export and --report need --wait")


def submit_command(args: argparse.Namespace) -> int:
    from cannonade.client.http import ApiError, HQClient

    run_id = ""
    try:
        _check(args)
        base, token = hq_address(args.hq, args.token_file)
        path = Path(args.file)
        name, data = _bundle(path, args)
        with HQClient(base, token) as client:
            bundle = client.upload_bundle(name, data)
            run_id = client.create_run(run_request(args, bundle.id))
            print(run_id, flush=True)  # alone on stdout: `ID=$(cannonade submit ...)`
            if not args.wait:
                return EXIT_OK
            return finish(client, follow(client, run_id, quiet=args.quiet), args)
    except (ApiError, CannonadeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        left = f": run {run_id} is left to the HQ" if run_id else ""
        print(f"\ninterrupted{left}", file=sys.stderr)
        return EXIT_INTERRUPTED


def _bundle(path: Path, args: argparse.Namespace) -> tuple[str, bytes]:
    """What to upload. A YAML plan is checked here first (every problem, before anything
    is sent) and, with the files it reads, packed into one archive whose entry it is."""
    from cannonade.plans.compile import is_plan, load_plan

    if is_plan(path):
        from cannonade.launch.plan import plan_bundle

        bundle, entry = plan_bundle(path, load_plan(path))
        if entry is not None and args.entry is None:
            args.entry = entry
        return bundle.filename, bundle.data
    try:
        return path.name, path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{args.file}: {e.strerror}") from None


def finish(client: HQClient, run: RemoteRun, args: argparse.Namespace) -> int:
    """Print a final run's summary, write its files; the exit code."""
    from cannonade.client.render import exit_code, summary_text

    print(summary_text(run), flush=True)
    code = exit_code(run)
    try:
        if args.summary_export and run.summary is not None:
            Path(args.summary_export).write_text(json.dumps(run.summary, indent=2) + "\n")
        if args.report:
            Path(args.report).write_text(client.report(run.id), encoding="utf-8")
    except OSError as e:
        print(f"error: {e.filename}: {e.strerror}", file=sys.stderr)
        return EXIT_ERROR
    return code


def follow(
    client: HQClient, run_id: str, *, quiet: bool = False, every: float = POLL_EVERY
) -> RemoteRun:
    """Poll the run until it is final, a progress line per poll on stderr. The first
    Ctrl-C asks the HQ to stop it (and keeps following); a second raises
    KeyboardInterrupt."""
    from cannonade.client.http import UNREACHABLE, ApiError
    from cannonade.client.render import is_final, progress_line

    stop_sent = False
    silent_since: float | None = None
    with _ctrl_c() as pressed:
        while True:
            if pressed.is_set() and not stop_sent:
                stop_sent = True
                _ask_stop(client, run_id)
            try:
                run = client.get_run(run_id)
            except ApiError as e:
                # An HQ restarting is not the end of a run it has stored: keep asking.
                if e.status != UNREACHABLE:
                    raise
                now = time.monotonic()
                silent_since = silent_since or now
                if now - silent_since > UNREACHABLE_FOR:
                    raise
                print(f"warning: {e}", file=sys.stderr, flush=True)
            else:
                silent_since = None
                if is_final(run):
                    return run
                if not quiet:
                    print(progress_line(run), file=sys.stderr, flush=True)
            _sleep(every, pressed, stop_sent)


def _ask_stop(client: HQClient, run_id: str) -> None:
    from cannonade.client.http import ApiError

    print(
        f"\nstopping run {run_id} (Ctrl-C again to stop waiting for it)",
        file=sys.stderr,
        flush=True,
    )
    try:
        client.stop_run(run_id)
    except ApiError as e:
        # 409: it ended meanwhile; the next look finds it final.
        if e.status != 409:
            print(f"warning: the stop was not taken: {e}", file=sys.stderr, flush=True)


def _sleep(seconds: float, pressed: threading.Event, stop_sent: bool) -> None:
    # Wake early for a first Ctrl-C, so the stop goes out at once.
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pressed.is_set() and not stop_sent:
            return
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


@contextmanager
def _ctrl_c() -> Iterator[threading.Event]:
    """SIGINT sets the event the first time and raises KeyboardInterrupt the second.
    A flag rather than an exception the first time: a request is never cut in half."""
    pressed = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield pressed  # signals reach only the main thread; nothing to install
        return

    def on_sigint(signum: int, frame: object) -> None:
        if pressed.is_set():
            raise KeyboardInterrupt
        pressed.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def remote_runs_command(args: argparse.Namespace) -> int:
    """``cannonade runs --hq URL``: the HQ's runs, as the local table shows them."""
    from cannonade.cli.history import print_runs
    from cannonade.client.http import ApiError, HQClient
    from cannonade.client.render import is_final, run_cells

    try:
        base, token = hq_address(args.hq, args.token_file)
        with HQClient(base, token) as client:
            runs = client.list_runs(args.status, args.limit).runs
            # The list carries no totals; a final run's summary (one request each) has them.
            rows = [run_cells(_detailed(client, r) if is_final(r) else r) for r in runs]
    except (ApiError, CannonadeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    if not rows:
        which = f"{args.status} runs" if args.status else "runs"
        print(f"no {which} on the HQ at {base}")
        return EXIT_OK
    print_runs(rows)
    return EXIT_OK


def _detailed(client: HQClient, run: RemoteRun) -> RemoteRun:
    from cannonade.client.http import ApiError

    try:
        return client.get_run(run.id)
    except ApiError:
        return run  # its row without totals, rather than no table
