"""Bad input: a checked-in corpus through real Envoy, and arbitrary JSON through the parser and the router.

Every bad request gets a 4xx in OpenAI's error shape that says what is wrong; none gets a 5xx; the router
keeps serving afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc.routing.request import BadRequest, parse_chat_request
from extproc.routing.router import NoTarget
from tests.routing_fixtures import router_with_healthy_clusters, two_clusters_three_providers
from tests.stack_runner import RunningStack, local_cluster, run_stack, stack_document

CORPUS = [json.loads(line) for line in (Path(__file__).parent / "data" / "bad_requests.jsonl").read_text().splitlines()]


def raw_body(case: dict) -> bytes:
    if "raw_hex" in case:
        return bytes.fromhex(case["raw_hex"])
    if "raw" in case:
        return case["raw"].encode()
    if "oversize" in case:
        size = case["oversize"]
        message = {"role": "user", "content": "x" * size["message_chars"]}
        return orjson.dumps({"messages": [message] * size["messages"]})
    return orjson.dumps(case.get("body"))


@pytest.fixture(scope="module")
def small_limit_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    document = stack_document([local_cluster("local-aws", 0.0928)])
    document["server"]["maxRequestBytes"] = "64KiB"
    with run_stack(document, tmp_path_factory.mktemp("bad-input")) as stack:
        yield stack


def test_the_corpus_has_at_least_40_cases() -> None:
    assert len(CORPUS) >= 40
    assert len({c["name"] for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[c["name"] for c in CORPUS])
def test_each_bad_request_gets_a_clear_openai_shaped_4xx(small_limit_stack: RunningStack, case: dict) -> None:
    response = httpx.request(
        case.get("method", "POST"),
        f"{small_limit_stack.url}/v1/chat/completions",
        content=raw_body(case),
        headers=case.get("headers", {}),
        timeout=30,
    )
    assert response.status_code == case["status"], response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == case["code"]
    assert error["type"] in ("invalid_request_error", "not_found_error")
    assert len(error["message"]) > 10


def test_still_serving_after_the_corpus(small_limit_stack: RunningStack) -> None:
    for case in CORPUS:
        httpx.request(
            case.get("method", "POST"),
            f"{small_limit_stack.url}/v1/chat/completions",
            content=raw_body(case),
            timeout=30,
        )
    good = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    response = httpx.post(f"{small_limit_stack.url}/v1/chat/completions", json=good, timeout=60)
    assert response.status_code == 200, response.text


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "tool", "wizard", 3])},
    optional={"content": JSON | st.text(max_size=50), "tool_calls": JSON},
)
BODY = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["auto", "gpt-4o-mini", "unknown-x"]) | JSON,
        "messages": st.lists(MESSAGE, max_size=4) | JSON,
        "max_tokens": st.integers(min_value=-5, max_value=10**9) | JSON,
        "stream": st.booleans() | JSON,
        "tools": JSON,
        "temperature": JSON,
        "response_format": JSON,
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODY | JSON)
def test_parser_and_router_never_raise_anything_but_client_errors(body: object) -> None:
    router = router_with_healthy_clusters(two_clusters_three_providers())
    try:
        request = parse_chat_request(json.dumps(body).encode())
        router.decide(request, "hybrid")
    except BadRequest as error:
        assert 400 <= error.status < 500 and error.message
    except NoTarget as error:
        assert error.status in (400, 429, 503) and error.message
