// llm-router dashboard: polls /v1/router/stats; the playground posts to /v1/chat/completions on this origin.
"use strict";

const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);
const usd = (v) => (v === null || v === undefined ? "–" : "$" + Number(v).toFixed(v !== 0 && Math.abs(v) < 0.01 ? 6 : 4));
const int = (v) => Math.round(v).toLocaleString();
const pct = (v) => (100 * v).toFixed(1) + "%";

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function fill(tableId, items, render) {
  const body = $(tableId).tBodies[0];
  body.replaceChildren();
  for (const item of items) render(body.insertRow(), item);
}

function showStats(stats) {
  const t = stats.totals;
  $("total-requests").textContent = int(t.requests);
  $("total-spend").textContent = usd(t.spend_usd);
  $("total-baseline").textContent = stats.baseline_model ? usd(t.baseline_usd) : "not configured";
  $("baseline-model").textContent = stats.baseline_model ? "(" + stats.baseline_model + ")" : "";
  $("total-savings").textContent = stats.baseline_model ? usd(t.savings_usd) : "–";
  $("savings-ratio").textContent = t.savings_ratio === null ? "" : pct(t.savings_ratio) + " less than the baseline";
  const health = $("health");
  health.textContent = stats.health.status;
  health.className = "pill " + stats.health.status;
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();

  fill("split", stats.targets, (row, target) => {
    row.dataset.target = target.name;
    cell(row, target.name + " (" + target.kind + ", " + target.model + ")");
    const share = cell(row, "");
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = Math.round(120 * target.share) + "px";
    share.append(bar, pct(target.share));
    cell(row, int(target.requests));
    cell(row, int(target.errors), target.errors ? "bad" : "");
    cell(row, usd(target.spend_usd));
    cell(row, usd(target.price_per_1k_usd));
  });

  fill("clusters", Object.entries(stats.health.clusters || {}), (row, [name, c]) => {
    row.dataset.cluster = name;
    cell(row, name);
    cell(row, c.healthy ? "ready" : c.state, c.healthy ? "" : "bad");
    cell(row, c.queue_depth);
    cell(row, c.in_flight);
    cell(row, Number(c.tokens_per_second).toFixed(1) + " (" + c.throughput_source + ")");
    cell(row, usd(c.cost_per_1k_tokens));
  });

  fill("decisions", stats.recent, (row, d) => {
    row.dataset.requestId = d.request_id;
    row.title = (d.candidates || [])
      .map((c) => c.target + ": " + usd(c.estimated_cost_usd) + ", " + c.estimated_latency_ms + " ms" + (c.skip ? " (skipped: " + c.skip + ")" : ""))
      .join("\n");
    cell(row, d.time.slice(11, 23));
    cell(row, d.request_id.slice(0, 8));
    cell(row, d.tenant);
    cell(row, d.strategy || "–");
    cell(row, d.reason || "–");
    cell(row, d.target || "–");
    cell(row, (d.fallbacks || []).map((f) => f.from + "→" + f.to + " (" + f.reason + ")").join(", ") || "–");
    cell(row, d.status === null ? d.outcome : d.status, d.status >= 400 || d.outcome !== "completed" ? "bad" : "");
    cell(row, d.tokens ? d.tokens.input + "+" + d.tokens.output : "–");
    cell(row, usd(d.cost_usd));
    cell(row, usd(d.baseline_cost_usd));
    cell(row, d.duration_ms);
  });
}

async function poll() {
  try {
    const response = await fetch("/v1/router/stats", { cache: "no-store" });
    if (response.ok) showStats(await response.json());
  } catch (error) {
    $("updated").textContent = "stats unavailable: " + error;
  }
}

// The actual cost of a request whose response did not pass the controller: from its decision record, which
// follows the response by a few milliseconds (Envoy's access log brings the usage).
async function loggedCost(requestId) {
  for (let attempt = 0; attempt < 30; attempt++) {
    const response = await fetch("/v1/router/stats", { cache: "no-store" });
    const record = response.ok ? ((await response.json()).recent || []).find((d) => d.request_id === requestId) : null;
    if (record && record.cost_usd !== null) return String(record.cost_usd);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return "–";
}

async function play(event) {
  event.preventDefault();
  const body = {
    model: "auto",
    messages: [{ role: "user", content: $("play-prompt").value }],
    max_tokens: Number($("play-max-tokens").value) || 16,
  };
  const headers = { "content-type": "application/json" };
  if ($("play-strategy").value) headers["x-llm-router-strategy"] = $("play-strategy").value;
  if ($("play-key").value) headers["authorization"] = "Bearer " + $("play-key").value;
  $("play-status").textContent = "sending…";
  const response = await fetch("/v1/chat/completions", { method: "POST", headers, body: JSON.stringify(body) });
  const reply = await response.json().catch(() => ({}));
  const header = (name) => response.headers.get(name) || "–";
  $("play-status").textContent = response.status;
  $("play-target").textContent = header("x-llm-router-target");
  $("play-reason").textContent = header("x-llm-router-reason");
  $("play-estimated").textContent = header("x-llm-router-estimated-cost-usd");
  $("play-cost").textContent = header("x-llm-router-cost-usd");
  $("play-request-id").textContent = header("x-request-id");
  if (!response.headers.get("x-llm-router-cost-usd")) loggedCost(header("x-request-id")).then((cost) => ($("play-cost").textContent = cost));
  $("play-answer").textContent = reply.choices ? reply.choices[0].message.content : JSON.stringify(reply.error || reply);
  const explained = await fetch("/v1/router/explain", { method: "POST", headers, body: JSON.stringify(body) });
  const why = await explained.json();
  fill("play-explain", why.candidates || [], (row, c) => {
    row.dataset.target = c.target;
    cell(row, c.target);
    cell(row, c.outcome);
    cell(row, usd(c.estimated_cost_usd));
    cell(row, c.estimated_latency_ms);
    cell(row, c.why, "why");
  });
  poll();
}

$("play-form").addEventListener("submit", (event) => play(event).catch((error) => ($("play-status").textContent = String(error))));
poll();
setInterval(poll, POLL_MS);
