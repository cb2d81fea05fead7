"""`make bench`: every benchmark, one table of figures against their targets, one JSON file.

    python -m bench.all [--only intake,widget,lighthouse,klaviyo,winback,admin] [--quick]
                        [--out var/bench] [--ARGS-FOR NAME "..."]

Each benchmark runs as its own process (`python -m bench.<module> ... --json FILE`), as
documented in bench/README.md, with its output shown as it runs and kept in a log next to
the results; its JSON is then read and reduced to figures. The table has one row per
figure: its value, its target, `met` or `MISSED` (or `FAILED` when the benchmark did not
produce it), and the value of the previous run in the same directory, so a change shows.
The results go to `var/bench/<UTC timestamp>.json` for comparison over time.
Exit status: 0 when every figure was produced and met its target, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass(slots=True)
class Figure:
    benchmark: str
    name: str
    value: float | None
    unit: str
    target: str
    met: bool
    note: str = ""


def _failed(benchmark: str, name: str, target: str, note: str) -> Figure:
    return Figure(benchmark, name, None, "", target, False, note)


# --- from each benchmark's JSON to figures ---------------------------------------------

LABELS = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}


def intake_figures(data: dict[str, Any]) -> list[Figure]:
    rate_target = float(data["targets"]["orders_per_s"])
    p99_target = float(data["targets"]["p99_ms"])
    figures: list[Figure] = []
    for case in data["cases"]:
        label = f"{LABELS.get(case['database'], case['database'])}, {case['workers']} worker(s)"
        run = case.get("intake")
        if case.get("error") or not run:
            note = str(case.get("error") or "no intake run")[:80]
            figures.append(_failed("intake", f"orders/s, {label}", f">= {rate_target:,.0f}", note))
            figures.append(_failed("intake", f"p99 ack, {label}", f"< {p99_target:.0f} ms", note))
            continue
        rate = float(run["processed_per_s"])
        p99 = float(run["p99_ms"])
        figures.append(
            Figure(
                "intake",
                f"orders/s, {label}",
                rate,
                "/s",
                f">= {rate_target:,.0f}",
                rate >= rate_target,
            )  # fmt: skip
        )
        figures.append(
            Figure(
                "intake", f"p99 ack, {label}", p99, "ms", f"< {p99_target:.0f} ms", p99 < p99_target
            )  # fmt: skip
        )
    return figures


def widget_figures(data: dict[str, Any]) -> list[Figure]:
    targets = data["targets"]
    loader_kb = data["assets"]["stamp-loader.js"]["gzip9"] / 1024
    figures = [
        Figure(
            "widget",
            "loader, gzip -9",
            loader_kb,
            "KB",
            f"<= {targets['loader_kb_gz']:.0f} KB",
            loader_kb <= targets["loader_kb_gz"],
        )  # fmt: skip
    ]
    for case in data["cases"]:
        label = (
            f"JSON p99 at {case['rate']:.0f}/s, {LABELS.get(case['database'], case['database'])}"
        )
        target = f"< {targets['p99_ms']:.0f} ms at {targets['rate']:.0f}/s"
        if case.get("error"):
            figures.append(_failed("widget", label, target, str(case["error"])[:80]))
            continue
        met = (
            case["p99_ms"] < targets["p99_ms"]
            and not case["errors"]
            and case["rate"] >= targets["rate"]
            and case["sent_rate"] >= 0.98 * case["rate"]
        )
        note = ", ".join(f"{k}: {v}" for k, v in case["errors"].items())[:80]
        figures.append(Figure("widget", label, float(case["p99_ms"]), "ms", target, met, note))
    return figures


def lighthouse_figures(data: dict[str, Any]) -> list[Figure]:
    medians = data["medians"]
    return [
        Figure(
            "lighthouse",
            "score lost to the widget (median)",
            float(data["difference"]),
            "points",
            f"<= {data['target']:.0f} points",
            bool(data["met"]),
            f"with {medians['with']:.0f}, without {medians['without']:.0f}",
        )
    ]


def klaviyo_figures(data: dict[str, Any]) -> list[Figure]:
    # Klaviyo and win-back keep their targets in code, not in their JSON.
    from bench.klaviyo_sync import TARGET_REQUESTS_PER_MEMBER as KLAVIYO_REQUESTS_PER_MEMBER
    from bench.klaviyo_sync import TARGET_SECONDS as KLAVIYO_SECONDS

    members = int(data["members"])
    per_member = data["requests"] / members
    label = f"{members:,} members"
    return [
        Figure("klaviyo", f"requests per member, {label}", per_member, "",
               f"<= {KLAVIYO_REQUESTS_PER_MEMBER}", per_member <= KLAVIYO_REQUESTS_PER_MEMBER),
        Figure("klaviyo", f"first sync wall time, {label}", float(data["sync_seconds"]), "s",
               f"< {KLAVIYO_SECONDS:.0f} s", data["sync_seconds"] < KLAVIYO_SECONDS),
        Figure("klaviyo", "profiles correct in Klaviyo", float(data["profiles_correct"]), "",
               f"= {members:,}", data["profiles_correct"] == members and data["backlog_after"] == 0,
               f"backlog after {data['backlog_after']}"),
    ]  # fmt: skip


def winback_figures(data: dict[str, Any]) -> list[Figure]:
    from bench.winback import TARGET_MB as WINBACK_MB
    from bench.winback import TARGET_SECONDS as WINBACK_SECONDS

    total = float(data["fit_s"]) + float(data["score_s"])
    label = f"{int(data['customers']):,} customers"
    return [
        Figure("winback", f"fit + score, {label}", total, "s", f"< {WINBACK_SECONDS:.0f} s",
               total < WINBACK_SECONDS),
        Figure("winback", f"peak RSS, {label}", float(data["peak_mb"]), "MB",
               f"< {WINBACK_MB:.0f} MB", data["peak_mb"] < WINBACK_MB),
    ]  # fmt: skip


def admin_figures(data: dict[str, Any]) -> list[Figure]:
    label = f"{int(data['members']):,} members, {int(data['entries']):,} entries"
    return [
        Figure("admin", f"home p99 server time, {label}", float(data["p99_ms"]), "ms",
               "< 300 ms", data["p99_ms"] < 300, f"p50 {data['p50_ms']:.1f} ms"),
        Figure("admin", "home LCP (median of 5)", float(data["lcp_ms"]), "ms", "< 1500 ms",
               data["lcp_ms"] < 1500),
        Figure("admin", "home CLS (worst of 5)", float(data["cls"]), "", "< 0.05",
               data["cls"] < 0.05),
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Benchmark:
    module: str
    args: tuple[str, ...]  # `make bench` defaults: the figures the issues set targets for
    quick: tuple[str, ...]  # --quick: small sizes, to check the plumbing, not the targets
    figures: Callable[[dict[str, Any]], list[Figure]]
    timeout: float


BENCHMARKS: dict[str, Benchmark] = {
    "intake": Benchmark(
        "bench.intake", ("--db", "postgresql", "--workers", "2"),
        ("--db", "postgresql", "--workers", "1", "--orders", "300", "--min-orders", "200",
         "--duration", "3", "--bare-duration", "2"),
        intake_figures, 900,
    ),
    "widget": Benchmark(
        "bench.widget", ("--db", "postgresql", "--workers", "2"),
        ("--db", "postgresql", "--duration", "3", "--warmup", "1", "--rate", "50"),
        widget_figures, 900,
    ),
    "lighthouse": Benchmark("bench.lighthouse", ("--runs", "5"), ("--runs", "1"),
                            lighthouse_figures, 1200),
    "klaviyo": Benchmark("bench.klaviyo_sync", (), ("--members", "2000"), klaviyo_figures, 900),
    "winback": Benchmark("bench.winback", (), ("--customers", "20000"), winback_figures, 900),
    "admin": Benchmark("bench.admin", (), ("--members", "2000", "--entries", "20000",
                       "--orders", "4000", "--requests", "20"), admin_figures, 900),
}  # fmt: skip


# --- running ---------------------------------------------------------------------------


@dataclass(slots=True)
class Run:
    name: str
    command: list[str]
    exit_code: int | None
    seconds: float
    log: str
    data: dict[str, Any] | None


def run_benchmark(name: str, args: list[str], workdir: Path) -> Run:
    """Run one benchmark, echoing its output, and read its JSON."""
    spec = BENCHMARKS[name]
    out = workdir / f"{name}.json"
    log = workdir / f"{name}.log"
    command = [sys.executable, "-m", spec.module, *args, "--json", str(out)]
    print(f"\n=== {name}: {shlex.join(command[1:])}", flush=True)
    started = time.monotonic()
    code: int | None
    with log.open("w") as log_file:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=False,
        )  # fmt: skip
        assert process.stdout is not None
        try:
            for line in process.stdout:
                sys.stdout.write("  " + line)
                log_file.write(line)
            code = process.wait(timeout=spec.timeout)
        except subprocess.TimeoutExpired:
            process.terminate()
            code = None
    data = json.loads(out.read_text()) if out.exists() else None
    return Run(name, command, code, time.monotonic() - started, str(log), data)


def figures_of(run: Run) -> list[Figure]:
    if run.data is None:
        why = "timed out" if run.exit_code is None else f"exit {run.exit_code}, no JSON"
        return [_failed(run.name, "(no figures)", "-", f"{why}; see {run.log}")]
    try:
        return BENCHMARKS[run.name].figures(run.data)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        return [_failed(run.name, "(unreadable JSON)", "-", f"{type(exc).__name__}: {exc}")]


def previous_values(directory: Path, current: Path) -> dict[tuple[str, str], float]:
    """The figures of the latest earlier result file in `directory`."""
    earlier = sorted(p for p in directory.glob("*.json") if p != current)
    if not earlier:
        return {}
    data = json.loads(earlier[-1].read_text())
    return {
        (f["benchmark"], f["name"]): f["value"]
        for f in data.get("figures", [])
        if f.get("value") is not None
    }


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"
    return f"{text} {unit}".strip()


def table(figures: list[Figure], previous: dict[tuple[str, str], float]) -> str:
    rows = [("benchmark", "figure", "value", "target", "verdict", "previous", "note")]
    for f in figures:
        verdict = "FAILED" if f.value is None else ("met" if f.met else "MISSED")
        before = previous.get((f.benchmark, f.name))
        rows.append(
            (f.benchmark, f.name, _number(f.value, f.unit), f.target, verdict,
             _number(before, f.unit), f.note)
        )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="small sizes (plumbing check)")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench")
    for name in BENCHMARKS:
        parser.add_argument(
            f"--{name}-args", default=None, metavar="ARGS",
            help=f"replace the {name} arguments (one shell-quoted string)",
        )  # fmt: skip
    args = parser.parse_args(argv)
    unknown = {n for n in args.only.split(",") if n} - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n for n in BENCHMARKS if not args.only or n in args.only.split(",")]
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = args.out / stamp
    workdir.mkdir()
    runs: list[Run] = []
    for name in names:
        spec = BENCHMARKS[name]
        override = getattr(args, f"{name}_args")
        bench_args = (
            shlex.split(override) if override else list(spec.quick if args.quick else spec.args)
        )
        runs.append(run_benchmark(name, bench_args, workdir))
    figures = [figure for run in runs for figure in figures_of(run)]
    result_path = args.out / f"{stamp}.json"
    previous = previous_values(args.out, result_path)
    result_path.write_text(
        json.dumps(
            {
                "started": started.isoformat(),
                "host": platform.node(),
                "cores": os.cpu_count(),
                "quick": args.quick,
                "commit": _commit(),
                "figures": [asdict(f) for f in figures],
                "runs": [asdict(run) for run in runs],
            },
            indent=2,
            default=str,
        )
    )
    met = sum(f.met for f in figures)
    print(f"\nStamp benchmarks, {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores"
          + (" (--quick: small sizes, targets not meaningful)" if args.quick else ""))  # fmt: skip
    print(table(figures, previous))
    print(f"\n{met} of {len(figures)} figures met their target; results in {result_path}")
    return 0 if met == len(figures) else 1


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted")
        sys.exit(130)
