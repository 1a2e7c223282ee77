"""Smoke tests of the benchmark harness (bench/): its pure parts, and one callgrind count of the controller's
in-process work. No servers, no load, no timing assertions."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
import uvloop

from bench import procstat
from bench.grpc_exchange import SERVERS, replay, serve
from bench.instructions import collected, instructions_per_request
from bench.payloads import COMPLETION, large_prompt_request, sse_chunks
from bench.profile import parse_folded, short_frame, summarise
from bench.report import (
    CONTROLLER,
    ENVOY,
    LITELLM_1,
    MINIMAL,
    Cell,
    ProcStat,
    Results,
    RoundFigures,
    SoakPoint,
    evaluate,
    render,
)
from bench.streaming import percentile, response_complete
from bench.systems import BASELINE_CLUSTER, envoy_alone_bootstrap, minimal_extproc_bootstrap, router_document
from bench.wrk import WrkResult, lua_long_string, lua_script, parse_wrk_output

WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:8080/v1/chat/completions
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.55ms    1.18ms   7.74ms   86.84%
  11725 requests in 1.01s, 6.75MB read
Requests/sec:  11656.43
WRK_JSON {"requests":11725,"duration_us":1005878,"bytes":7077000,"connect_errors":0,"read_errors":1,"write_errors":0,\
"status_errors":2,"timeouts":0,"mean_us":1550.2,"max_us":7740,"p50_us":1210,"p90_us":2900,"p99_us":5600,"p999_us":7100}
"""


def test_parse_wrk_output() -> None:
    result = parse_wrk_output(WRK_OUTPUT)
    assert result.requests == 11725
    assert result.errors == 3 and result.status_errors == 2
    assert result.p50_ms == pytest.approx(1.21) and result.p99_ms == pytest.approx(5.6)
    assert result.rps == pytest.approx(11725 / 1.005878)


def test_parse_wrk_output_without_result_line() -> None:
    with pytest.raises(ValueError, match="WRK_JSON"):
        parse_wrk_output("Running 1s test\nt.lua: t.lua:5: unexpected symbol near ']'\n")


def test_lua_strings_survive_brackets(tmp_path: Path) -> None:
    assert lua_long_string("a]]b") == "[=[a]]b]=]"
    script = lua_script(tmp_path / "body.json", {"content-type": "application/json"})
    assert "wrk.headers[ [[content-type]] ]" in script  # `[[[` would not parse
    assert 'wrk.method = "POST"' in script and "done = function" in script


def test_proc_parsers() -> None:
    stat = "1234 (python3 (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 100 1000 500"
    fields = procstat.parse_stat(stat)
    assert (fields.ppid, fields.utime_ticks, fields.stime_ticks) == (1, 250, 75)
    assert procstat.parse_statm_rss("5000 300 100 1 0 200 0", page_size=4096) == 300 * 4096
    busy = procstat.parse_proc_stat_busy("cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 ...", ticks=100)
    assert busy == pytest.approx((100 + 5 + 50 + 1 + 2 + 3) / 100)


def test_own_process_is_watchable() -> None:
    sample = procstat.Watched("me", __import__("os").getpid()).sample()
    assert sample.rss > 0 and sample.cpu_s >= 0 and sample.processes == 1


def test_streaming_helpers() -> None:
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert percentile([1.0, 2.0], 99) == 2.0
    assert response_complete(b"HTTP/1.1 200 OK\r\ncontent-length: 3", b"abc")
    assert not response_complete(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked", b"5\r\nhello\r\n")
    assert response_complete(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked", b"5\r\nhello\r\n0\r\n\r\n")


def test_payloads() -> None:
    body = large_prompt_request(1 << 20)
    assert abs(len(body) - (1 << 20)) < 1024
    assert orjson.loads(body)["messages"][1]["role"] == "user"
    events = sse_chunks(4)
    assert len(events) == 6 and events[-1] == b"data: [DONE]\n\n"
    assert orjson.loads(events[-2][6:])["usage"] == COMPLETION["usage"]


def test_folded_stack_summary() -> None:
    folded = (
        'process 1:"MainThread";run (/usr/lib/asyncio/base_events.py:600);handle (/x/extproc/server/a.py:10) 30\n'
        'process 1:"MainThread";run (/usr/lib/asyncio/base_events.py:600);decide (/x/extproc/routing/r.py:5) 10\n'
    )
    assert parse_folded(folded)[1][1] == 10
    assert short_frame("handle (/x/extproc/server/a.py:10)") == "handle (server/a.py)"
    summary = summarise(folded)
    assert summary.samples == 40
    assert summary.self_top[0] == ("handle (server/a.py)", 30)
    assert ("run (asyncio/base_events.py)", 40) in summary.inclusive_top


def test_derived_bootstraps_keep_the_listener_and_drop_the_targets() -> None:
    from extproc.config.loader import parse_config
    from extproc.envoy_config.bootstrap import render_bootstrap

    product = render_bootstrap(parse_config(router_document("http://127.0.0.1:9"), env={}))
    alone = envoy_alone_bootstrap(product, 9)
    manager = alone["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert all(f["name"] != "envoy.filters.http.ext_proc" for f in manager["http_filters"])
    assert BASELINE_CLUSTER in str(manager["route_config"]) and "cluster_header" not in str(manager["route_config"])
    minimal = minimal_extproc_bootstrap(product, 9, 7)
    names = [c["name"] for c in minimal["static_resources"]["clusters"]]
    assert BASELINE_CLUSTER in names and not any(n.startswith("target_") for n in names)
    assert "port_value': 7" in str(minimal["static_resources"]["clusters"])


def _wrk(rps: float, p50: float, p99: float) -> WrkResult:
    return WrkResult(int(rps * 5), 5.0, 0, 0, p50, p50, p50 * 1.5, p99, p99, p99)


def test_report_and_goals() -> None:
    def cell(system: str, c: int, rps: float, p50: float, p99: float, cpu: float = 0.0) -> Cell:
        procs = [ProcStat("envoy", 60, 70 << 20, 71 << 20, 1)]
        if cpu:
            procs.append(ProcStat("controller" if system == CONTROLLER else "minimal", cpu, 50 << 20, 51 << 20, 1))
        return Cell(system, c, _wrk(rps, p50, p99), procs)

    results = Results(machine={"cpu": "2"}, command="python bench/run.py")
    results.cells = [
        cell(ENVOY, 1, 10_000, 0.1, 0.3),
        cell(MINIMAL, 16, 2000, 8.0, 12.0, 450),
        cell(CONTROLLER, 1, 900, 1.0, 2.0, 600),
        cell(CONTROLLER, 16, 1800, 9.0, 14.0, 500),
        cell(LITELLM_1, 1, 60, 16.0, 40.0),
        cell(LITELLM_1, 16, 110, 140.0, 300.0),
    ]
    results.soak = [SoakPoint(n, (60 << 20) + n * 10, 70 << 20, 1500.0, 0) for n in range(0, 200_001, 10_000)]
    goals = {g.name: g for g in evaluate(results)}
    assert goals["throughput vs minimal ext_proc (c16)"].met is True
    assert goals["controller CPU per request (c16)"].met is True
    assert goals["throughput vs LiteLLM, 1 worker each"].met is True
    assert goals["c1 p50 added over Envoy alone"].met is True
    assert goals["streaming TTFB added (p50, vs direct)"].met is None
    assert goals["soak: controller RSS at the end vs after 50k"].met is True
    text = render(results)
    assert "| envoy+controller | 16 | 1,800 |" in text and "## Goals" in text


def test_interleaved_rounds_give_the_goals_their_medians() -> None:
    """Round by round the machine's speed changes; the goals take the median of each round's own ratio."""

    def round_cells(speed: float, controller_share: float) -> list[Cell]:
        def cell(system: str, c: int, rps: float, p50: float, cpu: float = 0.0) -> Cell:
            procs = [ProcStat("envoy", 60, 70 << 20, 71 << 20, 1)]
            if cpu:
                procs.append(ProcStat("controller" if system == CONTROLLER else "minimal", cpu, 50 << 20, 51 << 20, 1))
            return Cell(system, c, _wrk(rps * speed, p50 / speed, 2 * p50 / speed), procs)

        return [
            cell(ENVOY, 1, 4000, 0.25),
            cell(MINIMAL, 1, 900, 1.0, 700),
            cell(CONTROLLER, 1, 700, 1.2, 900),
            cell(MINIMAL, 16, 2000, 8.0, 450 / speed),
            cell(CONTROLLER, 16, 2000 * controller_share, 9.0, 520 / speed),
        ]

    results = Results(machine={"cpu": "2"}, command="python bench/run.py")
    results.rounds = [round_cells(1.0, 0.9), round_cells(0.7, 0.86), round_cells(1.3, 0.6)]
    assert RoundFigures.of(results.rounds[1]).throughput_ratio == pytest.approx(0.86)
    goals = {g.name: g for g in evaluate(results)}
    ratio = goals["throughput vs minimal ext_proc (c16)"]
    assert ratio.met is True and ratio.measured.startswith("86% median (60-90%) of 3 interleaved rounds")
    cpu = goals["controller CPU per request (c16)"]
    assert cpu.met is True and cpu.measured.startswith("520 µs median")  # 520, 743 and 400 µs
    assert goals["c1 p50 added over Envoy alone"].measured.startswith("+0.95 ms median")
    text = render(results)
    assert "## Interleaved rounds" in text and "| median | 2,000 |" in text


def test_callgrind_total_is_read() -> None:
    assert collected("==7== Events    : Ir\n==7== Collected : 123456789\n==7==\n") == 123456789
    with pytest.raises(ValueError, match="no instruction count"):
        collected("==7== valgrind: failed to start tool")


def test_instructions_per_request_of_the_controller() -> None:
    valgrind = shutil.which("valgrind")
    assert valgrind is not None, "valgrind is installed by `make test` (system-packages)"
    per_request = instructions_per_request(valgrind, low=20, high=60)
    # A request's routing work is hundreds of thousands of instructions; a broken replay would count ~0.
    assert 100_000 < per_request < 20_000_000


@pytest.mark.parametrize("server", SERVERS)
def test_the_exchange_replays_over_grpc(server: str) -> None:
    async def run() -> None:
        served, port = await serve(server)
        try:
            assert [len(messages) for _, messages in served.script.streams] == [2]  # the router's two
            assert (served.script.logged is not None) is (server == "controller")  # prepared: Envoy logs it
            await replay(served, port, 3)  # raises unless every stream ends OK
        finally:
            await served.server.stop(None)

    uvloop.run(run())
