"""The dashboard at /dashboard in headless Chromium, through Envoy's listener of the real stack: it loads, its
numbers follow live traffic, and the playground round-trips a prompt and shows where it went and why.

Needs Chromium (Debian: `apt-get install -y chromium`) and playwright-python from PyPI (no browser download:
it drives /usr/bin/chromium)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.observability_support import OPENAI_KEY, observed_stack_document
from tests.stack_runner import RunningStack, run_stack
from tests.standins.base import serve_in_thread
from tests.standins.openai_standin import OpenAIStandIn

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HI = {"model": "auto", "messages": [{"role": "user", "content": "Hello dashboard"}], "max_tokens": 8}
LIVE = 10_000  # ms to wait for the dashboard's next poll to show something


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    openai = OpenAIStandIn(api_key=OPENAI_KEY)
    with serve_in_thread(openai):
        document = observed_stack_document(openai.origin, {"baselineModel": "gpt-4o"})
        with run_stack(document, tmp_path_factory.mktemp("dashboard")) as running:
            yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Chromium is needed: apt-get install -y chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, stack: RunningStack) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{stack.url}/dashboard")
    yield page
    page.close()
    assert errors == []


def test_the_dashboard_shows_live_traffic_split_spend_and_savings(page: Page, stack: RunningStack) -> None:
    expect(page.locator("#health")).to_have_text("degraded", timeout=LIVE)  # dead-gcp is down
    expect(page.locator("#baseline-model")).to_have_text("(gpt-4o)")
    expect(page.locator('#clusters tr[data-cluster="local-aws"]')).to_contain_text("ready")
    expect(page.locator('#clusters tr[data-cluster="dead-gcp"]')).to_contain_text("unreachable")
    before = int(page.locator("#total-requests").inner_text().replace(",", ""))

    sent = [
        httpx.post(f"{stack.url}/v1/chat/completions", json=HI, timeout=30),
        httpx.post(f"{stack.url}/v1/chat/completions", json=HI, timeout=30),
        httpx.post(
            f"{stack.url}/v1/chat/completions",
            json=HI,
            headers={"x-llm-router-strategy": "external_first"},
            timeout=30,
        ),
    ]
    assert [r.status_code for r in sent] == [200, 200, 200]
    expect(page.locator("#total-requests")).to_have_text(str(before + 3), timeout=LIVE)
    for response in sent:
        row = page.locator(f'#decisions tr[data-request-id="{response.headers["x-request-id"]}"]')
        expect(row).to_contain_text(response.headers["x-llm-router-target"], timeout=LIVE)
    expect(page.locator('#split tr[data-target="local-aws"]')).to_contain_text("%")
    expect(page.locator('#split tr[data-target="openai"]')).not_to_contain_text("0.0%")
    expect(page.locator("#savings-ratio")).to_contain_text("less than the baseline", timeout=LIVE)
    assert float(page.locator("#total-savings").inner_text().removeprefix("$")) > 0


def test_the_playground_round_trips_and_explains_where_the_prompt_went(
    page: Page, stack: RunningStack, tmp_path: Path
) -> None:
    page.fill("#play-prompt", "Where do I go?")
    page.select_option("#play-strategy", "external_first")
    page.click("#play-send")
    expect(page.locator("#play-status")).to_have_text("200", timeout=LIVE)
    expect(page.locator("#play-target")).to_have_text("openai")
    expect(page.locator("#play-reason")).to_have_text("provider_available")
    expect(page.locator("#play-answer")).to_have_text("Echo: Where do I go?")
    # The actual cost comes from the decision record, which follows the response by a few milliseconds.
    expect(page.locator("#play-cost")).to_have_text(re.compile(r"^[0-9.e-]+$"), timeout=LIVE)
    assert float(page.locator("#play-cost").inner_text()) > 0
    assert float(page.locator("#play-estimated").inner_text()) > 0
    expect(page.locator('#play-explain tr[data-target="openai"]')).to_contain_text("chosen", timeout=LIVE)
    expect(page.locator('#play-explain tr[data-target="dead-gcp"]')).to_contain_text("unhealthy")
    request_id = page.locator("#play-request-id").inner_text()
    expect(page.locator(f'#decisions tr[data-request-id="{request_id}"]')).to_contain_text("openai", timeout=LIVE)
    screenshot = tmp_path / "dashboard.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
