"""Memory of one cannon holding many idle VUs.

    .venv/bin/python bench/vu_memory.py [--vus 50000] [--quick]

Runs ``cannonade run bench/scenarios/sleepy.py -u 50000 --duration 20s --rampup 5s
--graceful-stop 0s --quiet`` (every iteration is ``await vu.sleep(30)``, so the VUs sit
idle and no target is needed), samples the RSS of its process tree from
``/proc/PID/status`` every 0.5 s, and reports the peak and the peak per VU. A 1-VU run
of the same scenario gives the baseline (interpreter, imports, engine) so the marginal
cost of one VU is reported too. Target: 50,000 VUs in under 1 GiB.

Results go to stdout and to ``docs/performance.md`` between the ``vu_memory`` markers.
Exit status: 0 when the harness ran (the target prints PASS/MISS), 1 on a harness
error, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from http_cpu import (
    BENCH_DIR,
    DOCS,
    PROJECT_BIN,
    REPO,
    HarnessError,
    Interrupted,
    Machine,
    machine_info,
    pick_cpus,
    read_status_kib,
    run_measured,
    sigterm_unwinds,
    tree_pids,
    write_docs_section,
)

GIB = 1024 * 1024  # KiB in a GiB
TARGET_VUS = 50_000


@dataclass(slots=True)
class MemoryRun:
    """One ``cannonade run`` of the sleepy scenario."""

    vus: int
    seconds: float = 0.0
    returncode: int = 0
    cpu: float = 0.0
    peak_rss_kib: int = 0  # highest sampled sum of VmRSS over the process tree
    hwm_kib: int = 0  # highest VmHWM seen for the main process
    vus_max: int | None = None  # what the run itself reports, when it exports it
    timeline: list[tuple[float, int]] = field(default_factory=list)  # (s, tree RSS KiB)
    failed: str = ""

    @property
    def peak_kib(self) -> int:
        # Not wait4's ru_maxrss: Linux carries the forking parent's high-water mark
        # across exec, so it would report the harness's own size for a small child.
        return max(self.peak_rss_kib, self.hwm_kib)


def tree_rss_kib(root: int) -> tuple[int, int]:
    """(sum of VmRSS over ``root``'s process tree, ``root``'s own VmHWM), in KiB."""
    total = 0
    hwm = 0
    for pid in tree_pids(root):
        status = read_status_kib(pid)
        total += status.get("VmRSS", 0)
        if pid == root:
            hwm = status.get("VmHWM", 0)
    return total, hwm


def parse_vus_max(text: str) -> int | None:
    """``vus_max`` (or the highest ``vus``) from a ``--summary-export`` file, if present."""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        metrics = json.loads(text)["metrics"]
        for name, key in (("vus_max", "max"), ("vus_max", "value"), ("vus", "max")):
            node = metrics.get(name, {})
            value = node.get(key, node.get("values", {}).get(key))
            if isinstance(value, int | float) and not isinstance(value, bool):
                return int(value)
    return None


def sleepy_command(exe: str, vus: int, duration: int, rampup: int, export: Path) -> list[str]:
    return [
        exe,
        "run",
        str(BENCH_DIR / "scenarios" / "sleepy.py"),
        "-u",
        str(vus),
        "--duration",
        f"{duration}s",
        "--rampup",
        f"{rampup}s",
        "--graceful-stop",
        "0s",
        "--quiet",
        "--cannons",
        "1",
        "--db",
        str(export.parent / "runs.db"),
        "--summary-export",
        str(export),
    ]


def measure(exe: str, vus: int, duration: int, rampup: int, cpu: int, workdir: Path) -> MemoryRun:
    workdir.mkdir(parents=True, exist_ok=True)
    run = MemoryRun(vus)
    export = workdir / "summary.json"
    t0 = time.perf_counter()

    def sample(pid: int) -> None:
        rss, hwm = tree_rss_kib(pid)
        if rss:
            run.timeline.append((time.perf_counter() - t0, rss))
            run.peak_rss_kib = max(run.peak_rss_kib, rss)
        run.hwm_kib = max(run.hwm_kib, hwm)

    print(f"→ {vus:,} idle VUs, {duration}s (ramp-up {rampup}s)", flush=True)
    timeout = duration + rampup + 120.0
    done = run_measured(
        sleepy_command(exe, vus, duration, rampup, export),
        cpu=cpu,
        timeout=timeout,
        workdir=workdir,
        sample=sample,
        interval=0.5,
    )
    run.seconds, run.returncode, run.cpu = done.wall, done.returncode, done.cpu
    if done.timed_out:
        run.failed = f"did not finish within {timeout:.0f}s (stopped)"
    elif done.returncode not in (0, 99):
        run.failed = f"exit {done.returncode}: {done.last_error_line() or '(no stderr)'}"
    if export.exists():
        run.vus_max = parse_vus_max(export.read_text())
    return run


def _mib(kib: float) -> str:
    return f"{kib / 1024:,.0f} MiB"


@dataclass(frozen=True, slots=True)
class Verdict:
    verdict: str  # PASS, MISS, n/a
    detail: str


def judge(run: MemoryRun, base: MemoryRun | None) -> Verdict:
    """50,000 VUs under 1 GiB: measured when the run had 50,000, else projected."""
    if run.failed or not run.peak_kib:
        return Verdict("n/a", "the run did not complete")
    if run.vus >= TARGET_VUS:
        ok = run.peak_kib < GIB
        return Verdict("PASS" if ok else "MISS", f"{_mib(run.peak_kib)} at {run.vus:,} VUs")
    if base is None or base.failed or run.vus <= base.vus:
        return Verdict("n/a", f"only {run.vus:,} VUs and no baseline to project from")
    per_vu = (run.peak_kib - base.peak_kib) / (run.vus - base.vus)
    projected = base.peak_kib + per_vu * TARGET_VUS
    verdict = "PASS" if projected < GIB else "MISS"
    return Verdict(verdict, f"projected {_mib(projected)} at {TARGET_VUS:,} VUs")


def render(
    runs: Sequence[MemoryRun], base: MemoryRun | None, verdict: Verdict, markdown: bool
) -> str:
    rows = [run for run in (base, *runs) if run is not None]
    if markdown:
        lines = [
            "| VUs | VUs reported | peak RSS (tree) | VmHWM | per VU | marginal per VU "
            "| CPU s | wall s |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
    else:
        lines = [
            f"{'VUs':>8}{'reported':>10}{'peak RSS':>12}{'VmHWM':>11}{'per VU':>14}"
            f"{'marginal':>12}{'CPU s':>8}{'wall s':>8}"
        ]
    for r in rows:
        if r.failed:
            lines.append(
                f"| {r.vus:,} | failed: {r.failed} | | | | | | |"
                if markdown
                else f"{r.vus:>8,}  failed: {r.failed}"
            )
            continue
        per_vu = f"{r.peak_kib / r.vus:,.1f} KiB" if r is not base else "(baseline)"
        marginal = "–"
        if base is not None and r is not base and not base.failed and r.vus > base.vus:
            marginal = f"{(r.peak_kib - base.peak_kib) / (r.vus - base.vus):,.1f} KiB"
        reported = f"{r.vus_max:,}" if r.vus_max is not None else "–"
        cells = (
            f"{r.vus:,}",
            reported,
            _mib(r.peak_kib),
            _mib(r.hwm_kib),
            per_vu,
            marginal,
            f"{r.cpu:.1f}",
            f"{r.seconds:.1f}",
        )
        if markdown:
            lines.append("| " + " | ".join(cells) + " |")
        else:
            widths = (8, 10, 12, 11, 14, 12, 8, 8)
            lines.append("".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)))
    target = f"{TARGET_VUS:,} idle VUs in one cannon < 1 GiB RSS"
    lines += [
        "",
        f"- **{verdict.verdict}** {target} ({verdict.detail})"
        if markdown
        else f"{verdict.verdict:<5} {target} ({verdict.detail})",
    ]
    return "\n".join(lines)


def render_doc(
    runs: Sequence[MemoryRun],
    base: MemoryRun | None,
    verdict: Verdict,
    machine: Machine,
    command: str,
) -> str:
    main_run = runs[-1]
    step = max(1, len(main_run.timeline) // 10)
    timeline = ", ".join(f"{t:.0f}s {_mib(kib)}" for t, kib in main_run.timeline[::step])
    return "\n".join(
        [
            f"Measured {machine.date} with `{command}` on {machine.describe()}.",
            "",
            render(runs, base, verdict, markdown=True),
            "",
            "*peak RSS* is the highest sum of VmRSS over the cannonade process tree sampled "
            "every 0.5 s (or the main process's VmHWM when higher); *per VU* divides it by "
            "the VUs; *marginal* subtracts the 1-VU run first, so it is what one more idle VU "
            "costs.",
            "",
            f"RSS over the {main_run.vus:,}-VU run: {timeline or 'no samples'}.",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--vus", type=int, default=None, help="idle VUs (default 50000)")
    p.add_argument("--duration", type=int, default=None, help="seconds (default 20)")
    p.add_argument("--rampup", type=int, default=None, help="seconds (default 5)")
    p.add_argument("--quick", action="store_true", help="10,000 VUs for 8 s, projected")
    p.add_argument("--no-baseline", action="store_true", help="skip the 1-VU run")
    p.add_argument("--no-docs", action="store_true", help="do not touch docs/performance.md")
    p.add_argument(
        "--cannonade",
        type=Path,
        default=PROJECT_BIN / "cannonade",
        help="the cannonade executable (default: the project venv's)",
    )
    args = p.parse_args(argv)
    vus = args.vus or (10_000 if args.quick else TARGET_VUS)
    duration = args.duration or (8 if args.quick else 20)
    rampup = args.rampup if args.rampup is not None else (2 if args.quick else 5)
    if vus < 1 or duration < 1 or rampup < 0:
        p.error("--vus and --duration must be >= 1, --rampup >= 0")

    exe = args.cannonade
    if not exe.exists():
        print(
            f"harness error: {exe} not found (run with the project venv's python)", file=sys.stderr
        )
        return 1
    machine = machine_info()
    _, cpu, _ = pick_cpus()
    print(f"machine: {machine.describe()}; cannon on CPU {cpu}", flush=True)
    try:
        with sigterm_unwinds(), tempfile.TemporaryDirectory(prefix="cannonade-vumem-") as tmp:
            base = None
            if not args.no_baseline:
                base = measure(str(exe), 1, 3, 0, cpu, Path(tmp) / "base")
            run = measure(str(exe), vus, duration, rampup, cpu, Path(tmp) / "main")
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Interrupted as e:
        print(f"\ninterrupted by {e}", file=sys.stderr)
        return 130
    except HarnessError as e:
        print(f"harness error: {e}", file=sys.stderr)
        return 1
    verdict = judge(run, base)
    print()
    print(render([run], base, verdict, markdown=False))
    if not args.no_docs:
        command = "python bench/vu_memory.py" + (" --quick" if args.quick else "")
        if args.vus:
            command += f" --vus {args.vus}"
        write_docs_section("vu_memory", render_doc([run], base, verdict, machine, command))
        print(f"\nwrote {DOCS.relative_to(REPO)} (vu_memory section)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
