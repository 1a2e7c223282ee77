"""CPU time and resident memory of a process (and optionally its descendants) from /proc."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class StatFields:
    ppid: int
    utime_ticks: int
    stime_ticks: int


def parse_stat(text: str) -> StatFields:
    """Fields of /proc/<pid>/stat; the command name may hold spaces and parentheses, so split at the last ')'."""
    rest = text[text.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    return StatFields(ppid=int(rest[1]), utime_ticks=int(rest[11]), stime_ticks=int(rest[12]))


def parse_statm_rss(text: str, page_size: int = PAGE_SIZE) -> int:
    """Resident bytes from /proc/<pid>/statm (second field, in pages)."""
    return int(text.split()[1]) * page_size


def _read(pid: int, name: str) -> str | None:
    try:
        return (PROC / str(pid) / name).read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU of all of the process's threads (0 once it is gone)."""
    text = _read(pid, "stat")
    if text is None:
        return 0.0
    fields = parse_stat(text)
    return (fields.utime_ticks + fields.stime_ticks) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    text = _read(pid, "statm")
    return parse_statm_rss(text) if text else 0


def children_map() -> dict[int, list[int]]:
    """ppid -> child pids for every process visible now."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        text = _read(int(entry.name), "stat")
        if text is None:
            continue
        children.setdefault(parse_stat(text).ppid, []).append(int(entry.name))
    return children


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (e.g. a server's worker processes)."""
    children = children_map()
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


@dataclass(frozen=True, slots=True)
class Sample:
    cpu_s: float
    rss: int
    processes: int
    cpu_by_pid: dict[int, float]

    def cpu_since(self, before: Sample) -> float:
        """CPU used since `before` by the processes alive now (a process started since counts whole; the CPU
        of one that exited since is lost, which `replaced_since` tells)."""
        return sum(cpu - before.cpu_by_pid.get(pid, 0.0) for pid, cpu in self.cpu_by_pid.items())

    def replaced_since(self, before: Sample) -> bool:
        return set(self.cpu_by_pid) != set(before.cpu_by_pid)


class Watched:
    """A named process whose CPU and RSS we sample; with `tree`, summed over it and its descendants."""

    def __init__(self, name: str, pid: int, tree: bool = False) -> None:
        self.name = name
        self.pid = pid
        self.tree = tree

    def pids(self) -> list[int]:
        return process_tree(self.pid) if self.tree else [self.pid]

    def sample(self) -> Sample:
        cpu = {pid: cpu_seconds(pid) for pid in self.pids()}
        return Sample(sum(cpu.values()), sum(rss_bytes(p) for p in cpu), len(cpu), cpu)


def parse_proc_stat_busy(text: str, ticks: int = CLOCK_TICKS) -> float:
    """Seconds of CPU all cores spent busy (not idle, not iowait) since boot, from /proc/stat's first line."""
    fields = [int(x) for x in text.splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / ticks


def machine_busy_seconds() -> float:
    return parse_proc_stat_busy((PROC / "stat").read_text())


def own_cpu_seconds() -> float:
    """CPU of this process plus its waited-for children (the load generator runs as one)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Background:
    """CPU used on the machine by anything but the watched processes, this harness and its load generator:
    other tenants of a shared machine. Reported in cores (1.0 = one core fully busy) over an interval."""

    def __init__(self, watched: list[Watched]) -> None:
        self.watched = watched
        self._start = self._now()

    def _now(self) -> tuple[float, float, float]:
        ours = own_cpu_seconds() + sum(w.sample().cpu_s for w in self.watched)
        return time.monotonic(), machine_busy_seconds(), ours

    def cores(self) -> float:
        at, busy, ours = self._now()
        start_at, start_busy, start_ours = self._start
        elapsed = at - start_at
        return max((busy - start_busy) - (ours - start_ours), 0.0) / elapsed if elapsed > 0 else 0.0


def background_cores(seconds: float = 1.0) -> float:
    """Cores busy with other work over the next `seconds` while nothing of ours runs."""
    probe = Background([])
    time.sleep(seconds)
    return probe.cores()
