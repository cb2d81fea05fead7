"""How busy the machine was during a run, and how much of that was not the benchmark.

Other work on a shared box (a test suite, a build) takes CPU from the server under test
and makes its figures look worse than they are. The benchmark reads /proc before and
after each run and prints the share of the machine used by everything else, so a noisy
figure is visible as such. Linux only; elsewhere it reports nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class Snapshot:
    busy_ticks: int
    processes: dict[int, tuple[int, str, int]]  # pid -> (process group, tag, cpu ticks)


@dataclass(frozen=True, slots=True)
class Usage:
    """Average cores busy over a run: the machine, each of our roles, everything else."""

    cores: int
    seconds: float
    machine: float
    roles: dict[str, float]  # "server", "wrk", "postgres" -> cores
    other: float

    @property
    def ours(self) -> float:
        return sum(self.roles.values())

    def cpu_ms_per(self, role: str, count: float) -> float:
        """CPU milliseconds `role` spent per unit of work (`count` units in the run)."""
        return self.roles.get(role, 0.0) * self.seconds * 1000 / count if count else 0.0


def _busy_ticks() -> int:
    fields = (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(value) for value in fields[:7])
    return user + nice + system + irq + softirq


def _process(pid_dir: Path) -> tuple[int, str, int] | None:
    try:
        raw = (pid_dir / "stat").read_text()
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        rest = raw[raw.rindex(")") + 2 :].split()
        pgrp, utime, stime = int(rest[2]), int(rest[11]), int(rest[12])
        tag = comm
        if comm == "postgres":
            tag = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        return pgrp, tag, utime + stime
    except (OSError, ValueError, IndexError):
        return None


def snapshot() -> Snapshot | None:
    if not (PROC / "stat").exists():
        return None
    processes: dict[int, tuple[int, str, int]] = {}
    for pid_dir in PROC.iterdir():
        if pid_dir.name.isdigit() and (info := _process(pid_dir)) is not None:
            processes[int(pid_dir.name)] = info
    return Snapshot(_busy_ticks(), processes)


def _role(info: tuple[int, str, int], groups: dict[str, int], database: str | None) -> str | None:
    pgrp, tag, _ = info
    for role, group in groups.items():
        if pgrp == group:
            return role
    if "postgres" in tag:
        # A backend's title names its database and client ("postgres: 15/main: postgres
        # <db> 127.0.0.1(5432) idle"); the postmaster, checkpointer, WAL writer and the
        # other helpers serve every database and count as ours.
        parts = tag.split()
        is_backend = any(part.startswith(("127.0.0.1(", "[local]")) for part in parts)
        if not is_backend or (database is not None and database in parts):
            return "postgres"
    return None


def usage(
    before: Snapshot | None,
    after: Snapshot | None,
    seconds: float,
    groups: dict[str, int],
    database: str | None = None,
    measured: dict[str, float] | None = None,
) -> Usage | None:
    """Cores used between two snapshots by the machine, by each process group in `groups`
    (plus PostgreSQL serving `database`, plus `measured` CPU seconds of processes that
    exited meanwhile, such as wrk itself), and by everything else."""
    if before is None or after is None or seconds <= 0:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    machine = (after.busy_ticks - before.busy_ticks) / hz / seconds
    ticks: dict[str, int] = {}
    for pid, info in after.processes.items():
        role = _role(info, groups, database)
        if role is not None:
            previous = before.processes.get(pid)
            ticks[role] = ticks.get(role, 0) + info[2] - (previous[2] if previous else 0)
    roles = {role: value / hz / seconds for role, value in ticks.items()}
    for role, cpu_seconds in (measured or {}).items():
        roles[role] = roles.get(role, 0.0) + cpu_seconds / seconds
    other = max(machine - sum(roles.values()), 0.0)
    return Usage(os.cpu_count() or 1, seconds, machine, roles, other)
