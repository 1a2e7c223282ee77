"""Sample the controller with py-spy under load and summarise where its CPU goes (folded stacks)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def py_spy_binary(explicit: str | None = None) -> Path | None:
    for candidate in (explicit, os.environ.get("PY_SPY_BIN"), str(BENCH_DIR / ".venv-litellm" / "bin" / "py-spy")):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    found = shutil.which("py-spy")
    return Path(found) if found else None


def record_command(binary: Path, pid: int, seconds: int, output: Path, rate: int = 250) -> list[str]:
    """Folded ("raw") stacks of every thread that is running (idle threads are left out)."""
    return [
        str(binary),
        "record",
        *("--pid", str(pid), "--duration", str(seconds), "--rate", str(rate)),
        *("--format", "raw", "--output", str(output), "--nonblocking"),
    ]


def start_recording(binary: Path, pid: int, seconds: int, output: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        record_command(binary, pid, seconds, output), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


@dataclass(frozen=True, slots=True)
class ProfileSummary:
    samples: int
    self_top: list[tuple[str, int]]  # function -> samples where it was the innermost frame
    inclusive_top: list[tuple[str, int]]  # function -> samples where it was anywhere on the stack
    lines_top: list[tuple[str, int]]  # function:line -> samples where it was the innermost frame


def parse_folded(text: str) -> list[tuple[list[str], int]]:
    """`frame;frame;...;frame count` lines into (frames root first, count)."""
    stacks = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def short_frame(frame: str, line: bool = False) -> str:
    """`func (/long/path/to/pkg/module.py:123)` -> `func (pkg/module.py)` (with `:123` when `line`)."""
    name, _, where = frame.partition(" (")
    if not where:
        return frame
    path = where.rstrip(")")
    if not line:
        path = path.rsplit(":", 1)[0]
    parts = path.split("/")
    return f"{name} ({'/'.join(parts[-2:])})"


def summarise(text: str, top: int = 25) -> ProfileSummary:
    stacks = parse_folded(text)
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    total = 0
    for frames, count in stacks:
        total += count
        # Thread names (py-spy's first frame, e.g. "process 12:\"MainThread\"") are not code.
        code = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not code:
            continue
        names = [short_frame(f) for f in code]
        own[names[-1]] += count
        lines[short_frame(code[-1], line=True)] += count
        for name in set(names):
            anywhere[name] += count
    return ProfileSummary(total, own.most_common(top), anywhere.most_common(top), lines.most_common(top // 2))


def format_summary(summary: ProfileSummary) -> str:
    lines = [f"py-spy samples: {summary.samples}", "", "self (innermost frame):"]
    lines += [f"  {100 * n / summary.samples:5.1f}%  {frame}" for frame, n in summary.self_top]
    lines += ["", "inclusive (anywhere on the stack):"]
    lines += [f"  {100 * n / summary.samples:5.1f}%  {frame}" for frame, n in summary.inclusive_top]
    lines += ["", "hottest lines (self):"]
    lines += [f"  {100 * n / summary.samples:5.1f}%  {frame}" for frame, n in summary.lines_top]
    return "\n".join(lines)
