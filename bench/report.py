"""The results of one harness run, the printed table, and the verdict against the performance goals."""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median

from bench.decision import DecisionTiming
from bench.exchange_cost import ControllerCost
from bench.streaming import StreamSummary
from bench.wrk import WrkResult

ENVOY = "envoy-alone"
MINIMAL = "envoy+minimal"
CONTROLLER = "envoy+controller"
CONTROLLER_NO_USAGE = "envoy+controller, usage not asked"  # streaming: Envoy strips the usage event
CONTROLLER_2W = "envoy+controller 2w"  # `llm-router serve --workers 2`
LITELLM_1 = "litellm 1w"
LITELLM_2 = "litellm 2w"
MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ProcStat:
    name: str
    cpu_us_per_request: float
    rss_before: int
    rss_after: int
    processes: int
    pids_changed: bool = False  # a worker died or was replaced during the cell: its CPU is not all counted


@dataclass(frozen=True, slots=True)
class Cell:
    system: str
    concurrency: int
    wrk: WrkResult
    procs: list[ProcStat]
    background_cores: float = 0.0  # CPU other tenants of the machine used during the cell
    ext_proc_streams: float = 0.0  # gRPC streams Envoy opened to the ext_proc server, per request
    ext_proc_messages: float = 0.0  # messages Envoy sent on them, per request

    def proc(self, name: str) -> ProcStat | None:
        return next((p for p in self.procs if p.name == name), None)


@dataclass(frozen=True, slots=True)
class LargeE2E:
    system: str
    wrk: WrkResult


@dataclass(frozen=True, slots=True)
class SoakPoint:
    requests: int
    controller_rss: int
    envoy_rss: int
    rps: float
    errors: int


@dataclass
class Results:
    machine: dict[str, str] = field(default_factory=dict)
    command: str = ""
    cells: list[Cell] = field(default_factory=list)
    streaming: dict[str, StreamSummary] = field(default_factory=dict)
    decision_small: DecisionTiming | None = None
    decision_large: DecisionTiming | None = None
    exchange: ControllerCost | None = None
    exchange_instructions: float | None = None  # per request, callgrind (bench/instructions.py)
    large_e2e: list[LargeE2E] = field(default_factory=list)
    soak: list[SoakPoint] = field(default_factory=list)
    soak_note: str = ""
    soak_system: str = CONTROLLER
    profile: str = ""
    notes: list[str] = field(default_factory=list)
    # Interleaved rounds: Envoy alone, the minimal and the controller running side by side, each measured once
    # per concurrency in every round, so that a change in the machine's speed reaches all three alike.
    rounds: list[list[Cell]] = field(default_factory=list)

    def cell(self, system: str, concurrency: int) -> Cell | None:
        return _find(self.cells, system, concurrency)


def _find(cells: list[Cell], system: str, concurrency: int) -> Cell | None:
    return next((c for c in cells if c.system == system and c.concurrency == concurrency), None)


@dataclass(frozen=True, slots=True)
class RoundFigures:
    """The figures the goals compare, from the cells of one round (None where a cell is missing)."""

    minimal_rps: float | None  # c16
    controller_rps: float | None  # c16
    controller_cpu_us: float | None  # c16, per request
    minimal_cpu_us: float | None  # c16, per request
    envoy_p50_ms: float | None  # c1
    minimal_p50_ms: float | None  # c1
    controller_p50_ms: float | None  # c1

    @classmethod
    def of(cls, cells: list[Cell]) -> RoundFigures:
        def wrk(system: str, c: int) -> WrkResult | None:
            cell = _find(cells, system, c)
            return cell.wrk if cell else None

        def cpu(system: str, process: str) -> float | None:
            cell = _find(cells, system, 16)
            stat = cell.proc(process) if cell else None
            return stat.cpu_us_per_request if stat else None

        minimal16, controller16 = wrk(MINIMAL, 16), wrk(CONTROLLER, 16)
        envoy1, minimal1, controller1 = wrk(ENVOY, 1), wrk(MINIMAL, 1), wrk(CONTROLLER, 1)
        return cls(
            minimal16.rps if minimal16 else None,
            controller16.rps if controller16 else None,
            cpu(CONTROLLER, "controller"),
            cpu(MINIMAL, "minimal"),
            envoy1.p50_ms if envoy1 else None,
            minimal1.p50_ms if minimal1 else None,
            controller1.p50_ms if controller1 else None,
        )

    @property
    def throughput_ratio(self) -> float | None:
        if self.controller_rps is None or not self.minimal_rps:
            return None
        return self.controller_rps / self.minimal_rps

    def added_ms(self, p50_ms: float | None) -> float | None:
        """A c1 p50 over Envoy alone's in the same round."""
        return None if p50_ms is None or self.envoy_p50_ms is None else p50_ms - self.envoy_p50_ms


def medians(values: list[float | None]) -> tuple[float, float, float] | None:
    """(median, lowest, highest) of the values measured, None if none was."""
    known = [v for v in values if v is not None]
    return (median(known), min(known), max(known)) if known else None


# -- formatting ------------------------------------------------------------------------------------------


def _us(stat: ProcStat | None) -> str:
    if stat is None:
        return "-"
    return f"{stat.cpu_us_per_request:,.0f}" + ("*" if stat.pids_changed else "")


def _rss(stat: ProcStat | None) -> str:
    if stat is None:
        return "-"
    return f"{stat.rss_before / MB:.0f}→{stat.rss_after / MB:.0f}"


def _traffic(cell: Cell) -> str:
    if not cell.ext_proc_streams:
        return "-"
    return f"{cell.ext_proc_streams:.1f} / {cell.ext_proc_messages:.1f}"


def _python(cell: Cell) -> ProcStat | None:
    """The Python side of a system: the minimal ext_proc, the controller, or LiteLLM (all its processes)."""
    return next((p for p in cell.procs if p.name in ("minimal", "controller", "litellm")), None)


def cells_table(cells: list[Cell]) -> str:
    head = (
        "| system | c | req/s | p50 ms | p90 ms | p99 ms | errors | CPU µs/req envoy | CPU µs/req python "
        "| CPU µs/req nginx | ext_proc streams/msgs per req | RSS MB python before→after | RSS MB envoy before→after "
        "| other load (cores) |"
    )
    rows = [head, "|" + "---|" * 14]
    for cell in cells:
        w = cell.wrk
        python = _python(cell)
        python_name = f" ({python.processes} procs)" if python and python.processes > 1 else ""
        rows.append(
            f"| {cell.system} | {cell.concurrency} | {w.rps:,.0f} | {w.p50_ms:.2f} | {w.p90_ms:.2f} | {w.p99_ms:.2f} "
            f"| {w.errors} | {_us(cell.proc('envoy'))} | {_us(python)}{python_name} | {_us(cell.proc('nginx'))} "
            f"| {_traffic(cell)} | {_rss(python)} | {_rss(cell.proc('envoy'))} | {cell.background_cores:.2f} |"
        )
    return "\n".join(rows)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def rounds_table(figures: list[RoundFigures]) -> str:
    rows = [
        "| round | c16 req/s minimal | c16 req/s controller | controller/minimal % | c16 CPU µs/req minimal "
        "| c16 CPU µs/req controller | c1 p50 ms envoy | c1 p50 ms minimal | c1 p50 ms controller "
        "| c1 added ms minimal | c1 added ms controller |",
        "|" + "---|" * 11,
    ]

    def row(label: str, values: list[float | None], specs: list[str]) -> str:
        return f"| {label} | " + " | ".join(_fmt(v, spec) for v, spec in zip(values, specs, strict=True)) + " |"

    def values(f: RoundFigures) -> list[float | None]:
        ratio = f.throughput_ratio
        return [
            f.minimal_rps,
            f.controller_rps,
            None if ratio is None else 100 * ratio,
            f.minimal_cpu_us,
            f.controller_cpu_us,
            f.envoy_p50_ms,
            f.minimal_p50_ms,
            f.controller_p50_ms,
            f.added_ms(f.minimal_p50_ms),
            f.added_ms(f.controller_p50_ms),
        ]

    specs = [",.0f", ",.0f", ".0f", ",.0f", ",.0f", ".2f", ".2f", ".2f", "+.2f", "+.2f"]
    columns = [values(f) for f in figures]
    rows += [row(str(i + 1), v, specs) for i, v in enumerate(columns)]
    middle = [medians(list(column)) for column in zip(*columns, strict=True)]
    rows.append(row("median", [m[0] if m else None for m in middle], specs))
    return "\n".join(rows)


def streaming_table(streaming: dict[str, StreamSummary]) -> str:
    rows = [
        "| path | requests | events | TTFB p50 ms | TTFB p90 ms | TTFB p99 ms | headers p50 ms | whole stream p50 ms |",
        "|" + "---|" * 8,
    ]
    for name, s in streaming.items():
        rows.append(
            f"| {name} | {s.requests} | {s.events} | {s.ttfb_p50_ms:.2f} | {s.ttfb_p90_ms:.2f} | {s.ttfb_p99_ms:.2f} "
            f"| {s.headers_p50_ms:.2f} | {s.total_p50_ms:.2f} |"
        )
    return "\n".join(rows)


def decision_line(label: str, d: DecisionTiming) -> str:
    return (
        f"{label}: {d.body_bytes:,} bytes, ~{d.input_tokens:,} tokens -> {d.target} ({d.reason}); median of "
        f"{d.repeats}: parse {d.parse_ms:.3f} ms + decide {d.decide_ms:.3f} ms = {d.parse_decide_ms:.3f} ms "
        f"(max {d.parse_decide_max_ms:.3f} ms); rewrite for the target {d.rewrite_ms:.3f} ms"
    )


def exchange_line(cost: ControllerCost) -> str:
    c = cost.controller
    return (
        f"whole exchange for the benchmark chat ({c.streams} streams, {c.messages} messages, the servicer driven "
        f"with the messages Envoy sends): {c.us_per_request:.0f} µs/request, of which the in-process driver "
        f"{cost.driver.us_per_request:.0f} µs: application code ≈ {cost.application_us:.0f} µs/request. "
        "The rest of the CPU per request measured under load is gRPC/HTTP2/protobuf transport and the event loop."
    )


def large_table(rows: list[LargeE2E]) -> str:
    out = ["| system | requests | p50 ms | p90 ms | p99 ms | errors |", "|" + "---|" * 6]
    for r in rows:
        w = r.wrk
        out.append(f"| {r.system} | {w.requests} | {w.p50_ms:.2f} | {w.p90_ms:.2f} | {w.p99_ms:.2f} | {w.errors} |")
    return "\n".join(out)


def soak_growth(points: list[SoakPoint], after: int = 50_000) -> float | None:
    """Bytes of RSS per request from the first sample at or past `after` requests to the last one."""
    base = next((p for p in points if p.requests >= after), None)
    if base is None or points[-1].requests <= base.requests:
        return None
    return (points[-1].controller_rss - base.controller_rss) / (points[-1].requests - base.requests)


def soak_table(points: list[SoakPoint]) -> str:
    out = ["| requests | python RSS MB | Δ vs first sample | envoy RSS MB | req/s | errors |", "|" + "---|" * 6]
    first = points[0].controller_rss if points else 0
    for p in points:
        out.append(
            f"| {p.requests:,} | {p.controller_rss / MB:.1f} | {(p.controller_rss - first) / MB:+.1f} "
            f"| {p.envoy_rss / MB:.1f} | {p.rps:,.0f} | {p.errors} |"
        )
    return "\n".join(out)


# -- goals -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Goal:
    name: str
    target: str
    measured: str
    met: bool | None  # None: not measured in this run


def _round_figures(r: Results) -> list[RoundFigures]:
    return [RoundFigures.of(cells) for cells in r.rounds]


def _spread(m: tuple[float, float, float], spec: str, unit: str = "") -> str:
    """A `medians` result as 'median (lowest-highest)'."""
    return f"{m[0]:{spec}}{unit} median ({m[1]:{spec}}-{m[2]:{spec}}{unit})"


def _goal_ratio_minimal(r: Results) -> Goal:
    name, target = "throughput vs minimal ext_proc (c16)", ">= 85%"
    ratios = medians([f.throughput_ratio for f in _round_figures(r)])
    if ratios is not None:
        percent = (100 * ratios[0], 100 * ratios[1], 100 * ratios[2])
        measured = f"{_spread(percent, '.0f', '%')} of {len(r.rounds)} interleaved rounds"
        return Goal(name, target, measured, ratios[0] >= 0.85)
    ctl, minimal = r.cell(CONTROLLER, 16), r.cell(MINIMAL, 16)
    if not (ctl and minimal):
        return Goal(name, target, "not measured", None)
    ratio = ctl.wrk.rps / minimal.wrk.rps
    return Goal(name, target, f"{100 * ratio:.0f}% ({ctl.wrk.rps:,.0f} vs {minimal.wrk.rps:,.0f} req/s)", ratio >= 0.85)


def _goal_cpu(r: Results) -> Goal:
    name, target = "controller CPU per request (c16)", "<= 550 µs"
    figures = _round_figures(r)
    cpu = medians([f.controller_cpu_us for f in figures])
    if cpu is not None:
        floor = medians([f.minimal_cpu_us for f in figures])
        extra = f"; the minimal {floor[0]:,.0f} µs" if floor else ""
        return Goal(name, target, f"{_spread(cpu, ',.0f', ' µs')} of {len(figures)} rounds{extra}", cpu[0] <= 550)
    ctl = r.cell(CONTROLLER, 16)
    stat = ctl.proc("controller") if ctl else None
    if stat is None:
        return Goal(name, target, "not measured", None)
    return Goal(name, target, f"{stat.cpu_us_per_request:,.0f} µs", stat.cpu_us_per_request <= 550)


def _goal_litellm(r: Results) -> list[Goal]:
    """Throughput and p99 against LiteLLM with the same number of worker processes (1, and 2 when run)."""
    goals = []
    for ours, theirs, workers in ((CONTROLLER, LITELLM_1, 1), (CONTROLLER_2W, LITELLM_2, 2)):
        concurrencies = sorted({c.concurrency for c in r.cells if c.system == theirs})
        pairs = [(c, r.cell(ours, c), r.cell(theirs, c)) for c in concurrencies]
        pairs = [(c, ctl, lite) for c, ctl, lite in pairs if ctl and lite and lite.wrk.rps > 0]
        label = f"{workers} worker{'s' if workers > 1 else ''} each"
        if not pairs:
            if workers == 1:
                goals.append(Goal(f"throughput vs LiteLLM, {label}", ">= 12x", "not measured", None))
                goals.append(Goal(f"p99 vs LiteLLM, {label}", "lower", "not measured", None))
            continue
        ratios = [(c, ctl.wrk.rps / lite.wrk.rps) for c, ctl, lite in pairs]
        goals.append(
            Goal(
                f"throughput vs LiteLLM, {label}",
                ">= 12x at every c",
                ", ".join(f"c{c}: {ratio:.1f}x" for c, ratio in ratios),
                all(ratio >= 12 for _, ratio in ratios),
            )
        )
        goals.append(
            Goal(
                f"p99 vs LiteLLM, {label}",
                "lower at every c",
                ", ".join(f"c{c}: {ctl.wrk.p99_ms:.2f} vs {lite.wrk.p99_ms:.2f} ms" for c, ctl, lite in pairs),
                all(ctl.wrk.p99_ms < lite.wrk.p99_ms for _, ctl, lite in pairs),
            )
        )
    return goals


def _goal_c1(r: Results) -> Goal:
    name, target = "c1 p50 added over Envoy alone", "<= 1.0 ms"
    figures = _round_figures(r)
    added = medians([f.added_ms(f.controller_p50_ms) for f in figures])
    if added is not None:
        floor = medians([f.added_ms(f.minimal_p50_ms) for f in figures])
        extra = f"; the minimal ext_proc adds {floor[0]:+.2f} ms" if floor else ""
        measured = f"{_spread(added, '+.2f', ' ms')} of {len(figures)} interleaved rounds{extra}"
        return Goal(name, target, measured, added[0] <= 1.0)
    ctl, envoy = r.cell(CONTROLLER, 1), r.cell(ENVOY, 1)
    if not (ctl and envoy):
        return Goal(name, target, "not measured", None)
    added_ms = ctl.wrk.p50_ms - envoy.wrk.p50_ms
    minimal = r.cell(MINIMAL, 1)
    floor_text = f"; the minimal ext_proc adds +{minimal.wrk.p50_ms - envoy.wrk.p50_ms:.2f} ms" if minimal else ""
    return Goal(
        name,
        target,
        f"+{added_ms:.2f} ms ({ctl.wrk.p50_ms:.2f} vs {envoy.wrk.p50_ms:.2f}){floor_text}",
        added_ms <= 1.0,
    )


def _goal_streaming(r: Results) -> Goal:
    name, target = "streaming TTFB added (p50, vs direct)", "<= 1 ms"
    ctl, direct = r.streaming.get(CONTROLLER), r.streaming.get("direct")
    if not (ctl and direct):
        return Goal(name, target, "not measured", None)
    added = ctl.ttfb_p50_ms - direct.ttfb_p50_ms
    envoy = r.streaming.get(ENVOY)
    extra = f"; vs Envoy alone +{ctl.ttfb_p50_ms - envoy.ttfb_p50_ms:.2f} ms" if envoy else ""
    minimal = r.streaming.get(MINIMAL)
    if minimal:
        extra += f"; the minimal ext_proc adds +{minimal.ttfb_p50_ms - direct.ttfb_p50_ms:.2f} ms"
    unasked = r.streaming.get(CONTROLLER_NO_USAGE)
    if unasked:
        extra += f"; usage not asked +{unasked.ttfb_p50_ms - direct.ttfb_p50_ms:.2f} ms"
    return Goal(name, target, f"+{added:.2f} ms{extra}", added <= 1.0)


def _goal_large(r: Results) -> Goal:
    name, target = "1 MB prompt: parse + decide", "<= 10 ms"
    d = r.decision_large
    if d is None:
        return Goal(name, target, "not measured", None)
    return Goal(
        name, target, f"{d.parse_decide_ms:.2f} ms median, {d.parse_decide_max_ms:.2f} ms max", d.parse_decide_ms <= 10
    )


def _goal_soak(r: Results) -> Goal:
    name, target = "soak: controller RSS at the end vs after 50k", "within 10%"
    if r.soak and r.soak_system != CONTROLLER:
        return Goal(name, target, f"not measured (the soak ran {r.soak_system})", None)
    base = next((p for p in r.soak if p.requests >= 50_000), None)
    if base is None or not r.soak or r.soak[-1].requests <= base.requests:
        return Goal(name, target, "not measured" if not r.soak else "too short", None)
    last = r.soak[-1]
    growth = (last.controller_rss - base.controller_rss) / base.controller_rss
    per_request = soak_growth(r.soak) or 0.0
    return Goal(
        name,
        target,
        f"{100 * growth:+.1f}% ({base.controller_rss / MB:.1f} MB at {base.requests:,} -> "
        f"{last.controller_rss / MB:.1f} MB at {last.requests:,}; {per_request:.0f} bytes/request)",
        abs(growth) <= 0.10,
    )


def evaluate(r: Results) -> list[Goal]:
    return [
        _goal_ratio_minimal(r),
        _goal_cpu(r),
        *_goal_litellm(r),
        _goal_c1(r),
        _goal_streaming(r),
        _goal_large(r),
        _goal_soak(r),
    ]


def goals_table(goals: list[Goal]) -> str:
    verdict = {True: "met", False: "MISSED", None: "n/a"}
    rows = ["| goal | target | measured | verdict |", "|---|---|---|---|"]
    rows += [f"| {g.name} | {g.target} | {g.measured} | {verdict[g.met]} |" for g in goals]
    return "\n".join(rows)


def render(r: Results) -> str:
    parts = ["## Machine", "", *(f"- {k}: {v}" for k, v in r.machine.items()), "", f"Command: `{r.command}`", ""]
    if r.cells:
        parts += ["## Load (wrk, POST /v1/chat/completions)", "", cells_table(r.cells), ""]
        if any(p.pids_changed for c in r.cells for p in c.procs):
            parts += ["`*` a process of that group exited or was replaced during the cell.", ""]
    if r.rounds:
        parts += [
            "## Interleaved rounds (Envoy alone, minimal, controller side by side; each measured once per c a round)",
            "",
            rounds_table(_round_figures(r)),
            "",
        ]
    if r.streaming:
        parts += ["## Streaming TTFB (serial, one keep-alive connection)", "", streaming_table(r.streaming), ""]
    if r.decision_small or r.decision_large or r.exchange:
        parts += ["## The controller's own work, in-process (no gRPC)", ""]
        if r.decision_small:
            parts.append("- " + decision_line("benchmark chat", r.decision_small))
        if r.decision_large:
            parts.append("- " + decision_line("1 MB prompt", r.decision_large))
        if r.exchange:
            parts.append("- " + exchange_line(r.exchange))
        if r.exchange_instructions:
            parts.append(
                f"- the same exchange under callgrind: {r.exchange_instructions:,.0f} instructions per request "
                "(the driver's included). Unlike µs, the same for the same code on any run or machine."
            )
        parts.append("")
    if r.large_e2e:
        parts += ["## 1 MB prompt end to end (wrk c1)", "", large_table(r.large_e2e), ""]
    if r.soak:
        growth = soak_growth(r.soak)
        slope = f" Growth after 50k: {growth:.0f} bytes of RSS per request." if growth is not None else ""
        parts += [f"## Soak ({r.soak_system}, c16)", "", r.soak_note + slope, "", soak_table(r.soak), ""]
    if r.profile:
        parts += ["## Controller profile (py-spy, c16)", "", "```", r.profile, "```", ""]
    parts += ["## Goals", "", goals_table(evaluate(r)), ""]
    if r.notes:
        parts += ["## Notes", "", *(f"- {n}" for n in r.notes), ""]
    return "\n".join(parts)
