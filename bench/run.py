"""Side-by-side performance harness for llm-router. Run from the repository root:

    python bench/run.py            # full table, ~6 s per cell and 5 interleaved rounds (6-8 minutes)
    python bench/run.py --quick    # 3 s per cell
    python bench/run.py --soak 1000000 --only soak

One after another on the same machine, against the same fake upstream (nginx answering a fixed OpenAI
chat.completion with usage): Envoy alone, Envoy + the minimal two-message Python ext_proc, Envoy + the full
controller (`llm-router serve` + the bootstrap `llm-router envoy-config` renders), and LiteLLM's proxy with 1
and 2 workers. wrk drives POST /v1/chat/completions at each concurrency; CPU per request comes from
/proc/<pid>/stat deltas over the run. Then interleaved rounds: Envoy alone, the minimal ext_proc and the
controller running side by side, each measured at c1 and c16 in every round, for ratios that a change in the
machine's speed does not skew (the goals read their medians). Then: streaming TTFB (direct / Envoy / Envoy +
minimal ext_proc / Envoy + controller) against an SSE fake upstream, a 1 MB prompt (in-process parse + decide,
and end to end), and optionally a soak.

The table is printed to stdout (markdown) and saved with a JSON copy under bench/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import profile as pyspy
from bench import systems
from bench.decision import time_decision
from bench.exchange_cost import controller_cost
from bench.instructions import instructions_per_request
from bench.payloads import (
    CHAT_REQUEST_BYTES,
    STREAM_REQUEST_BYTES,
    STREAM_REQUEST_NO_USAGE_BYTES,
    large_prompt_request,
)
from bench.procstat import Background, background_cores
from bench.report import (
    CONTROLLER,
    CONTROLLER_NO_USAGE,
    ENVOY,
    MINIMAL,
    Cell,
    LargeE2E,
    ProcStat,
    Results,
    RoundFigures,
    SoakPoint,
    render,
)
from bench.streaming import measure_stream
from bench.wrk import finish_wrk, lua_script, run_wrk, start_wrk

SECTIONS = ("table", "rounds", "streaming", "large", "soak", "profile")
DEFAULT_SECTIONS = ("table", "rounds", "streaming", "large")
ROUND_CONCURRENCIES = (1, 16)
SYSTEM_KEYS = ("envoy", "minimal", "controller", "controller2", "litellm1", "litellm2")
SOAK_SAMPLE_EVERY = 10_000
COMPLETED = "http.llm_router.downstream_rq_completed"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- one measured cell -----------------------------------------------------------------------------------


def measure(system: systems.System, script: Path, concurrency: int, seconds: float) -> Cell:
    before = {w.name: w.sample() for w in system.watched}
    background = Background(system.watched)
    streams, messages = system.ext_proc_traffic()
    result = run_wrk(system.url, script, concurrency, seconds)
    other = background.cores()
    streams_after, messages_after = system.ext_proc_traffic()
    n = max(result.requests, 1)
    procs = []
    for w in system.watched:
        after, start = w.sample(), before[w.name]
        per_request = after.cpu_since(start) / result.requests * 1e6 if result.requests else 0.0
        procs.append(ProcStat(w.name, per_request, start.rss, after.rss, after.processes, after.replaced_since(start)))
    return Cell(
        system.name, concurrency, result, procs, other, (streams_after - streams) / n, (messages_after - messages) / n
    )


def wait_for_quiet(args: argparse.Namespace, longest: float, quiet_log: bool = False) -> float:
    """On a shared machine, wait (at most `longest` s) until other tenants leave the cores alone."""
    deadline = time.monotonic() + longest
    while True:
        other = background_cores(1.0)
        if other <= args.quiet_below or time.monotonic() >= deadline:
            if other > args.quiet_below or not quiet_log:
                verdict = "" if other <= args.quiet_below else f" (still busy after waiting {longest:g} s)"
                log(f"other load on the machine: {other:.2f} cores{verdict}")
            return other


def run_cells(system: systems.System, script: Path, args: argparse.Namespace, warmup: float) -> list[Cell]:
    """Each concurrency in turn; a cell that other tenants disturbed is measured again (bounded), keeping the
    quietest attempt."""
    wait_for_quiet(args, args.quiet_wait)
    log(f"{system.name}: warm-up {warmup:g} s at c16")
    run_wrk(system.url, script, 16, warmup)
    cells = []
    for concurrency in args.concurrency:
        best: Cell | None = None
        for attempt in range(1 + args.retries):
            if attempt:
                wait_for_quiet(args, min(args.quiet_wait, 30.0), quiet_log=True)
            time.sleep(0.5)
            cell = measure(system, script, concurrency, args.duration)
            w = cell.wrk
            cpu = ", ".join(f"{p.name} {p.cpu_us_per_request:,.0f} µs" for p in cell.procs)
            log(
                f"{system.name} c{concurrency}: {w.rps:,.0f} req/s, p50 {w.p50_ms:.2f} p99 {w.p99_ms:.2f} ms, "
                f"{w.errors} errors; CPU/req {cpu}; other load {cell.background_cores:.2f} cores"
            )
            if best is None or cell.background_cores < best.background_cores:
                best = cell
            if cell.background_cores <= args.noisy_above:
                break
            if attempt < args.retries:
                log(f"  other tenants used {cell.background_cores:.2f} cores during that cell: measuring it again")
        assert best is not None
        cells.append(best)
    return cells


# -- sections --------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, results: Results) -> None:
        self.args = args
        self.workdir = workdir
        self.results = results
        self.failed = False  # a part failed: keep the work directory (server logs) for a look
        self.chat_body = self._file("chat.json", CHAT_REQUEST_BYTES)
        self.large_body = self._file("large.json", large_prompt_request(args.large_bytes))
        headers = {"content-type": "application/json"}
        self.chat_script = self._file("chat.lua", lua_script(self.chat_body, headers).encode())
        self.large_script = self._file("large.lua", lua_script(self.large_body, headers).encode())

    def _file(self, name: str, data: bytes) -> Path:
        path = self.workdir / name
        path.write_bytes(data)
        return path

    def wanted(self, section: str) -> bool:
        return section in self.args.only

    def run(self) -> None:
        with systems.nginx_upstream(self.workdir) as upstream:
            # The product bootstrap for this upstream: the template of the Envoy-alone and minimal variants.
            document = systems.router_document(upstream.url)
            config = self.workdir / "router-template.yaml"
            config.write_text(json.dumps(document))
            product = systems.render_product_bootstrap(config, self.workdir / "envoy-template.yaml")
            if self.wanted("table") or self.wanted("large") or self.wanted("profile"):
                self._load(upstream, product)
            if self.wanted("rounds"):
                self._guarded("interleaved rounds", lambda: self._rounds(upstream, product))
            if self.wanted("streaming"):
                self._guarded("streaming", lambda: self._streaming(product))
            if self.wanted("large"):
                self._guarded("in-process timings", lambda: self._in_process(document))
            if self.wanted("soak"):
                self._guarded("soak", lambda: self._soak(upstream, product))

    def _guarded(self, what: str, step: Callable[[], None]) -> None:
        """Run one part; a failure is logged and noted in the report, and the rest of the run goes on."""
        try:
            step()
        except Exception as error:
            self.failed = True
            log(f"{what} FAILED: {type(error).__name__}: {error}")
            self.results.notes.append(f"{what} failed: {type(error).__name__}: {str(error)[:500]}")

    def _factories(
        self, upstream: systems.Upstream, product: dict[str, Any]
    ) -> Iterator[tuple[str, Callable[[], AbstractContextManager[systems.System]]]]:
        wd = self.workdir
        yield "envoy", lambda: systems.envoy_alone(wd, product, upstream)
        yield "minimal", lambda: systems.envoy_minimal(wd, product, upstream)
        yield "controller", lambda: systems.envoy_controller(wd, upstream)
        yield "controller2", lambda: systems.envoy_controller(wd, upstream, "controller2", workers=2)
        binary = systems.litellm_binary(self.args.litellm)
        for workers in (1, 2):
            key = f"litellm{workers}"
            if key not in self.args.systems:
                continue
            if binary is None:
                self.results.notes.append("LiteLLM not run: no litellm binary (see docs/BENCHMARKS.md for setup).")
                continue
            yield key, lambda w=workers: systems.litellm(wd, upstream, w, binary)  # type: ignore[misc]

    def _load(self, upstream: systems.Upstream, product: dict[str, Any]) -> None:
        for key, factory in self._factories(upstream, product):
            if key not in self.args.systems:
                continue
            is_router = key in ("envoy", "controller")
            if not (self.wanted("table") or (is_router and (self.wanted("large") or self.wanted("profile")))):
                continue
            log(f"starting {key}")

            def steps(key: str = key, factory: Callable[[], AbstractContextManager[systems.System]] = factory) -> None:
                with factory() as system:
                    if self.wanted("table"):
                        warmup = self.args.warmup * (3 if key.startswith("litellm") else 1)
                        self.results.cells += run_cells(system, self.chat_script, self.args, warmup)
                    if key in ("envoy", "controller") and self.wanted("large"):
                        self._guarded(f"{key}: 1 MB end to end", lambda: self._large_e2e(system))
                    if key == "controller" and self.wanted("profile"):
                        self._guarded("profile", lambda: self._profile(system))

            self._guarded(key, steps)
            time.sleep(1)

    def _rounds(self, upstream: systems.Upstream, product: dict[str, Any]) -> None:
        """Envoy alone, the minimal and the controller all running, measured in turn at c1 and c16 in each round
        (the first system to go moves on by one every round): a change in the machine's speed, which moves a
        single run's absolute numbers by up to 30% here, reaches the three alike, and the ratios hold."""
        wd, seconds = self.workdir, self.args.round_seconds
        with ExitStack() as stack:
            running = [
                stack.enter_context(systems.envoy_alone(wd, product, upstream)),
                stack.enter_context(systems.envoy_minimal(wd, product, upstream)),
                stack.enter_context(systems.envoy_controller(wd, upstream, name="controller-rounds")),
            ]
            wait_for_quiet(self.args, self.args.quiet_wait)
            for system in running:
                run_wrk(system.url, self.chat_script, 16, self.args.warmup)
            for index in range(self.args.rounds):
                turn = index % len(running)
                order = running[turn:] + running[:turn]
                cells = []
                for concurrency in ROUND_CONCURRENCIES:
                    for system in order:
                        time.sleep(0.3)
                        cells.append(measure(system, self.chat_script, concurrency, seconds))
                self.results.rounds.append(cells)
                figures = RoundFigures.of(cells)
                ratio = figures.throughput_ratio
                log(
                    f"round {index + 1}/{self.args.rounds}: c16 controller/minimal "
                    f"{'-' if ratio is None else f'{100 * ratio:.0f}%'}, c1 p50 added "
                    f"{figures.added_ms(figures.controller_p50_ms) or 0:+.2f} ms; other load "
                    f"{max(c.background_cores for c in cells):.2f} cores at most"
                )

    def _large_e2e(self, system: systems.System) -> None:
        seconds = max(self.args.duration / 2, 2)
        run_wrk(system.url, self.large_script, 1, 1)  # warm-up
        result = run_wrk(system.url, self.large_script, 1, seconds)
        log(
            f"{system.name} 1 MB prompt c1: p50 {result.p50_ms:.2f} ms, "
            f"{result.requests} requests, {result.errors} errors"
        )
        self.results.large_e2e.append(LargeE2E(system.name, result))

    def _profile(self, system: systems.System) -> None:
        binary = pyspy.py_spy_binary(self.args.py_spy)
        if binary is None:
            self.results.notes.append("profile skipped: py-spy not found (pip install py-spy).")
            return
        controller = next(w for w in system.watched if w.name == "controller")
        seconds = int(max(self.args.duration, 5))
        output = self.workdir / "controller.folded"
        log(f"profiling the controller (pid {controller.pid}) with py-spy for {seconds} s at c16")
        recorder = pyspy.start_recording(binary, controller.pid, seconds, output)
        time.sleep(1)
        result = run_wrk(system.url, self.chat_script, 16, seconds - 1)
        _, err = recorder.communicate(timeout=seconds + 30)
        if not output.exists():
            self.results.notes.append(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
            return
        summary = pyspy.summarise(output.read_text(), top=self.args.profile_top)
        self.results.profile = (
            f"{result.rps:,.0f} req/s while sampled at 250 Hz for {seconds} s "
            f"(folded stacks: {self._keep(output)})\n" + pyspy.format_summary(summary)
        )

    def _keep(self, path: Path) -> str:
        target = self.args.results / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
        return str(target)

    def _streaming(self, product: dict[str, Any]) -> None:
        body = self._file("stream.json", STREAM_REQUEST_BYTES)
        n, seconds = self.args.stream_requests, max(self.args.duration * 4, 20)
        with systems.sse_upstream(self.workdir, self.args.sse_chunks, self.args.sse_delay_ms) as sse:
            streams = self.results.streaming
            log(f"streaming TTFB: direct, {n} requests")
            streams["direct"] = measure_stream(
                f"{sse.url}/v1/chat/completions", body.read_bytes(), n, max_seconds=seconds
            )
            with systems.envoy_alone(self.workdir, product, sse) as system:
                log(f"streaming TTFB: {system.name}")
                streams[ENVOY] = measure_stream(system.url, body.read_bytes(), n, max_seconds=seconds)
            with systems.envoy_minimal(self.workdir, product, sse) as system:
                log(f"streaming TTFB: {system.name}")
                streams[MINIMAL] = measure_stream(system.url, body.read_bytes(), n, max_seconds=seconds)
            with systems.envoy_controller(self.workdir, sse, name="controller-sse") as system:
                log(f"streaming TTFB: {system.name}")
                streams[CONTROLLER] = measure_stream(system.url, body.read_bytes(), n, max_seconds=seconds)
                log(f"streaming TTFB: {CONTROLLER_NO_USAGE}")
                streams[CONTROLLER_NO_USAGE] = measure_stream(
                    system.url, STREAM_REQUEST_NO_USAGE_BYTES, n, max_seconds=seconds
                )
            for name, s in streams.items():
                log(f"  {name}: TTFB p50 {s.ttfb_p50_ms:.2f} ms p99 {s.ttfb_p99_ms:.2f} ms ({s.events} events)")

    def _in_process(self, document: dict[str, Any]) -> None:
        log("decision time in-process (benchmark chat and 1 MB prompt)")
        self.results.decision_small = time_decision(document, CHAT_REQUEST_BYTES, 5000)
        self.results.decision_large = time_decision(document, self.large_body.read_bytes(), self.args.large_repeats)
        log("the controller's servicer in-process, driven with Envoy's messages")
        try:
            self.results.exchange = controller_cost(document)
        except Exception as error:  # the servicer's shape is evolving; report rather than abort the run
            self.results.notes.append(f"in-process exchange cost not measured: {type(error).__name__}: {error}")
        valgrind = shutil.which("valgrind")
        if valgrind is None:
            self.results.notes.append("instructions per request not measured: valgrind is not installed")
            return
        log("the same work in instructions (callgrind, about a minute)")
        self.results.exchange_instructions = instructions_per_request(valgrind)

    def _soak(self, upstream: systems.Upstream, product: dict[str, Any]) -> None:
        total, deadline_s = self.args.soak, self.args.soak_max_minutes * 60
        if self.args.soak_system == "minimal":
            factory = systems.envoy_minimal(self.workdir, product, upstream)
        else:
            factory = systems.envoy_controller(self.workdir, upstream, name="controller-soak")
        with factory as system:
            controller = next(w for w in system.watched if w.name == self.args.soak_system)
            envoy = next(w for w in system.watched if w.name == "envoy")
            self.results.soak_system = system.name
            log(f"soak {system.name}: {total:,} requests at c16 (at most {deadline_s / 60:g} min), RSS every 10k")
            base = system.envoy_counter(COMPLETED)
            points = [SoakPoint(0, controller.sample().rss, envoy.sample().rss, 0.0, 0)]
            wrk = start_wrk(system.url, self.chat_script, 16, deadline_s + 5)
            started = last_at = time.monotonic()
            last_count, next_mark = 0, SOAK_SAMPLE_EVERY
            try:
                while wrk.poll() is None:
                    time.sleep(0.1)
                    count = system.envoy_counter(COMPLETED) - base
                    if count >= next_mark or count >= total:
                        now = time.monotonic()
                        rate = (count - last_count) / (now - last_at)
                        errors = self._soak_errors(system)
                        point = SoakPoint(count, controller.sample().rss, envoy.sample().rss, rate, errors)
                        points.append(point)
                        last_count, last_at = count, now
                        next_mark = (count // SOAK_SAMPLE_EVERY + 1) * SOAK_SAMPLE_EVERY
                        if len(points) % 10 == 0 or count >= total:
                            log(
                                f"soak {count:,}: {self.args.soak_system} RSS {point.controller_rss / 2**20:.1f} MB, "
                                f"{rate:,.0f} req/s"
                            )
                        if count >= total:
                            break
            finally:
                result = finish_wrk(wrk, interrupt=True)
            elapsed = time.monotonic() - started
            self.results.soak = points
            self.results.soak_note = (
                f"{points[-1].requests:,} of {total:,} requested in {elapsed / 60:.1f} min "
                f"({result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
                f"{result.errors} errors); RSS of the {self.args.soak_system} sampled each time Envoy's "
                f"completed-request counter passed a multiple of {SOAK_SAMPLE_EVERY:,}."
            )

    @staticmethod
    def _soak_errors(system: systems.System) -> int:
        try:
            return system.envoy_counter("http.llm_router.downstream_rq_5xx") + system.envoy_counter(
                "http.llm_router.downstream_rq_4xx"
            )
        except KeyError:
            return 0


# -- machine ---------------------------------------------------------------------------------------------


def _first_line(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "?"


def machine_info(args: argparse.Namespace) -> dict[str, str]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    mem = next(
        line.split(":", 1)[1].strip() for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line
    )
    import grpc

    from extproc.local.envoy_process import envoy_binary

    info = {
        "cpu": f"{os.cpu_count()} x {model} (load generator, Envoy, upstream and Python servers share them)",
        "memory": mem,
        "kernel": platform.release(),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "envoy": _first_line([str(envoy_binary()), "--version"]).split("version: ")[-1],
        "nginx": _first_line(["nginx", "-v"]),
        "wrk": _first_line(["wrk", "-v"]).split(" [")[0],
        "tree": _first_line(["git", "-C", str(systems.REPO_ROOT), "rev-parse", "--short", "HEAD"])
        + f" (+{len(_lines(['git', '-C', str(systems.REPO_ROOT), 'status', '--porcelain']))} uncommitted paths)",
        "cells": f"{args.duration:g} s each, wrk -t1 (one load-generator thread), warm-up {args.warmup:g} s",
        "priority": f"nice {args.nice}" + (" (harness, load generator and servers)" if args.nice else ""),
    }
    binary = systems.litellm_binary(args.litellm)
    if binary is not None:
        code = "import importlib.metadata as m; print(m.version('litellm'))"
        info["litellm"] = _first_line([str(binary.parent / "python"), "-c", code])
    return info


def _lines(command: list[str]) -> list[str]:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return []


# -- command line ----------------------------------------------------------------------------------------


def _csv(kind: type, choices: tuple[str, ...] | None = None) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        values = [kind(v) for v in text.split(",") if v]
        if choices and (bad := [v for v in values if v not in choices]):
            raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {', '.join(choices)}")
        return values

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 s cells, fewer streaming requests")
    parser.add_argument("--duration", type=float, help="seconds per load cell (default 6, --quick 3)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured load before a system's cells")
    parser.add_argument(
        "--quiet-below", type=float, default=0.3, help="other tenants' load (cores) under which a system's cells start"
    )
    parser.add_argument("--quiet-wait", type=float, default=120.0, help="longest wait for that quiet, seconds")
    parser.add_argument(
        "--noisy-above",
        type=float,
        default=0.25,
        help="a cell during which other tenants used more cores than this is measured again",
    )
    parser.add_argument("--retries", type=int, default=2, help="at most this many re-measurements of a noisy cell")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="scheduling priority of the harness and every server it starts (negative needs root): on a machine "
        "shared with other work, e.g. -10 keeps the cores for the systems under test",
    )
    parser.add_argument("--concurrency", type=_csv(int), default=[1, 16, 64], help="default 1,16,64")
    parser.add_argument("--systems", type=_csv(str, SYSTEM_KEYS), default=list(SYSTEM_KEYS), help=",".join(SYSTEM_KEYS))
    parser.add_argument(
        "--only",
        type=_csv(str, SECTIONS),
        help=f"sections to run ({','.join(SECTIONS)}); default: {','.join(DEFAULT_SECTIONS)}",
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds of Envoy alone, minimal and controller (default 5)"
    )
    parser.add_argument("--round-seconds", type=float, help="seconds per cell of a round (default 4, --quick 2)")
    parser.add_argument("--soak", type=int, default=0, metavar="N", help="also run N requests through Envoy+controller")
    parser.add_argument(
        "--soak-system",
        choices=("controller", "minimal"),
        default="controller",
        help="soak the controller (default) or the minimal ext_proc (gRPC's own memory behaviour, for comparison)",
    )
    parser.add_argument("--soak-max-minutes", type=float, default=20.0, help="stop the soak after this long")
    parser.add_argument("--profile", action="store_true", help="also sample the controller with py-spy at c16")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--stream-requests", type=int, help="streamed requests per path (default 300, --quick 100)")
    parser.add_argument("--sse-chunks", type=int, default=8, help="content events per streamed response")
    parser.add_argument("--sse-delay-ms", type=float, default=2.0, help="pause between streamed events")
    parser.add_argument("--large-bytes", type=int, default=1 << 20, help="size of the large prompt (default 1 MiB)")
    parser.add_argument("--large-repeats", type=int, default=30)
    parser.add_argument("--litellm", help="the litellm CLI (default: $LITELLM_BIN, bench/.venv-litellm, PATH)")
    parser.add_argument("--py-spy", help="the py-spy binary (default: $PY_SPY_BIN, bench/.venv-litellm, PATH)")
    parser.add_argument("--results", type=Path, default=systems.BENCH_DIR / "results", help="where to save the run")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (configs, server logs)")
    args = parser.parse_args(argv)
    args.duration = args.duration or (3.0 if args.quick else 6.0)
    args.stream_requests = args.stream_requests or (100 if args.quick else 300)
    args.round_seconds = args.round_seconds or (2.0 if args.quick else 4.0)
    only = set(args.only or DEFAULT_SECTIONS)
    if args.soak:
        only.add("soak")
    if args.profile:
        only.add("profile")
    args.only = only
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # inherited by wrk and every server started from here
    workdir = Path(tempfile.mkdtemp(prefix="llm-router-bench-"))
    results = Results(machine=machine_info(args), command=shlex.join(["python", "bench/run.py", *argv]))
    log(f"work directory {workdir}")
    started = time.monotonic()
    bench = Bench(args, workdir, results)
    try:
        bench.run()
    finally:
        results.machine["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        results.machine["wall time"] = f"{(time.monotonic() - started) / 60:.1f} min"
        text = render(results)
        print(text)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        args.results.mkdir(parents=True, exist_ok=True)
        (args.results / f"{stamp}.md").write_text(text)
        (args.results / f"{stamp}.json").write_text(json.dumps(dataclasses.asdict(results), indent=1, default=str))
        log(f"saved {args.results / stamp}.md and .json")
        if args.keep or bench.failed:
            log(f"kept {workdir} (configs and server logs)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
