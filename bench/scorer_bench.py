"""Time the complexity scorer per prompt at 1 KB, 100 KB and 1 MB. Run from the repository root:

    python bench/scorer_bench.py            # default iterations
    python bench/scorer_bench.py --scale 4  # four times as many samples

Prompts mix prose, a bulleted requirement list, code and math, so every scanner path runs. Wall-clock times
per `assess` call (mean, p50, p99) go to stdout, along with CPU time per call, which a busy machine disturbs
less. Above 8 KB only the sampled ends are scanned for markers, so 100 KB and 1 MB should cost about the same.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from extproc.routing.complexity import assess

_CHUNK = """Please review the design below and compare it with the current rollout plan.
- it must keep p99 latency under 200 ms
- it should handle at least 5,000 requests per second
Explain why the retry budget matters, and derive the expected queue length when utilization is 0.8.
```python
def backoff(attempt: int) -> float:
    return min(2 ** attempt * 0.1, 5.0);
```
The expected value is $E[X] = \\frac{\\rho}{1 - \\rho}$ for x = 0.8, so E[X] = 4.
"""
_SIZES = {"1 KB": 1024, "100 KB": 100 * 1024, "1 MB": 1024 * 1024}
_ITERATIONS = {"1 KB": 2000, "100 KB": 500, "1 MB": 200}


def body_of_size(size: int) -> dict:
    """A chat-completions body whose user message is `size` characters of mixed prompt text."""
    text = (_CHUNK * (size // len(_CHUNK) + 1))[:size]
    return {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "You are a careful senior engineer. Answer in English."},
            {"role": "user", "content": text},
        ],
    }


def time_calls(body: dict, iterations: int) -> tuple[list[float], float]:
    """Wall-clock microseconds of each call, and mean CPU microseconds per call."""
    for _ in range(min(iterations, 50)):
        assess(body)
    samples = []
    cpu_start = time.process_time()
    for _ in range(iterations):
        start = time.perf_counter_ns()
        assess(body)
        samples.append((time.perf_counter_ns() - start) / 1000)
    cpu = (time.process_time() - cpu_start) / iterations * 1e6
    return samples, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the iteration counts")
    args = parser.parse_args()
    print(f"{'prompt':>8} {'calls':>6} {'mean µs':>9} {'p50 µs':>9} {'p99 µs':>9} {'cpu µs':>9}  tier")
    for name, size in _SIZES.items():
        body = body_of_size(size)
        samples, cpu = time_calls(body, max(10, int(_ITERATIONS[name] * args.scale)))
        p99 = statistics.quantiles(samples, n=100)[98]
        tier = assess(body).tier.name.lower()
        mean, p50 = statistics.fmean(samples), statistics.median(samples)
        print(f"{name:>8} {len(samples):>6} {mean:>9.1f} {p50:>9.1f} {p99:>9.1f} {cpu:>9.1f}  {tier}")


if __name__ == "__main__":
    main()
