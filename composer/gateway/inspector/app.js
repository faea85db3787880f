// The inspector: polls the gateway's JSON under /_composer/api/ and draws what it says.
// Plain script, no framework, nothing fetched from anywhere but this gateway (see api.py).
"use strict";

const API = "/_composer/api";
const POLL_MS = 1500;
const HISTORY = 60; // points kept per chart
const MAX_REQUESTS = 50;
const QUANTILES = [0.5, 0.99];

const state = {
  endpoints: [],
  bodies: false,
  hops: [],
  hopsSignature: "",
  selected: null, // request id shown in the detail panel
  history: new Map(), // "endpoint|variant|container" -> [{t, inv, err, p50, p99}]
  last: new Map(), // same key -> the previous metrics sample
};

// --- small DOM helpers (text only: nothing from the API is parsed as HTML) -------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

function fmt(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return Number(value).toFixed(digits);
}

function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour12: false });
}

async function getJSON(path) {
  const response = await fetch(API + path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

// --- metrics: windowed rates and percentiles from the cumulative counters --------------------

// The q-quantile of cumulative buckets [[upper bound, count], ...] (+Inf last), as api.py does.
function quantile(q, buckets) {
  const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [bound, count] of buckets) {
    if (count >= rank) {
      if (bound === "+Inf") return lower;
      return lower + (bound - lower) * ((rank - below) / (count - below || 1));
    }
    lower = bound === "+Inf" ? lower : bound;
    below = count;
  }
  return lower;
}

function seriesKey(endpoint, variant, container) {
  return `${endpoint}|${variant}|${container}`;
}

function record(metrics, now) {
  const seen = new Set();
  for (const m of metrics) {
    const key = seriesKey(m.endpoint, m.variant, m.container);
    seen.add(key);
    const previous = state.last.get(key);
    state.last.set(key, { t: now, m });
    if (!previous) continue;
    const dt = Math.max((now - previous.t) / 1000, 0.001);
    const p = previous.m;
    const total = (x) => x.latency_ms.count + x.invocations + x.errors_4xx + x.errors_5xx;
    if (total(m) < total(p) || m.latency_buckets_us.length !== p.latency_buckets_us.length) {
      continue; // the series started again (an endpoint replaced): no rate across the reset
    }
    const window = m.latency_buckets_us.map(([bound, count], i) => [
      bound,
      count - p.latency_buckets_us[i][1],
    ]);
    const point = {
      t: now,
      inv: Math.max(m.invocations - p.invocations, 0) / dt,
      err: Math.max(m.errors_4xx + m.errors_5xx - p.errors_4xx - p.errors_5xx, 0) / dt,
    };
    for (const q of QUANTILES) {
      const us = quantile(q, window);
      point[`p${Math.round(q * 100)}`] = us === null ? null : us / 1000;
    }
    const history = state.history.get(key) || [];
    history.push(point);
    while (history.length > HISTORY) history.shift();
    state.history.set(key, history);
  }
  for (const key of [...state.last.keys()]) {
    if (!seen.has(key)) {
      state.last.delete(key);
      state.history.delete(key);
    }
  }
}

// A small line chart: one polyline per field, scaled to the largest value shown.
function chart(title, history, fields, unit) {
  const width = 200;
  const height = 48;
  const values = history.flatMap((point) => fields.map((f) => point[f])).filter((v) => v !== null);
  const top = Math.max(...values, 0) || 1;
  const box = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  box.append(svg("line", { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: "axis" }));
  fields.forEach((field, n) => {
    let d = "";
    let gap = true; // no value at the last point: the line starts again
    let end = null; // the newest point drawn, marked with a dot (a lone point has no line)
    history.forEach((point, i) => {
      const v = point[field];
      if (v === null || v === undefined) {
        gap = true;
        return;
      }
      const x = width - (history.length - 1 - i) * (width / (HISTORY - 1));
      const y = height - 2 - (v / top) * (height - 12);
      d += `${gap ? "M" : "L"}${x.toFixed(1)},${y.toFixed(1)} `;
      gap = false;
      end = [x, y];
    });
    if (d) box.append(svg("path", { d, class: `line-${"abc"[n]}` }));
    if (end) {
      const [cx, cy] = end.map((v) => v.toFixed(1));
      box.append(svg("circle", { cx, cy, r: 2, class: `dot-${"abc"[n]}` }));
    }
  });
  const label = svg("text", { x: 2, y: 10 });
  label.textContent = `max ${fmt(top, top < 10 ? 2 : 0)} ${unit}`;
  box.append(label);
  const now = history.length ? history[history.length - 1] : null;
  const current = fields.map((f, n) =>
    el("span", { class: `key-${"abc"[n]}` }, `${fields.length > 1 ? `${f} ` : ""}${fmt(now ? now[f] : null, 2)}`),
  );
  return el(
    "div",
    { class: "chart", dataset: { testid: "chart" } },
    el("div", { class: "title" }, `${title} `, current, ` ${unit}`),
    box,
  );
}

// --- endpoints, their containers, health and metrics -----------------------------------------

function renderEndpoints(metrics) {
  const byKey = new Map(metrics.map((m) => [seriesKey(m.endpoint, m.variant, m.container), m]));
  const groups = new Map(); // one per endpoint variant; its instances share the metrics
  for (const endpoint of state.endpoints) {
    const key = `${endpoint.name}|${endpoint.variant}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(endpoint);
  }
  const root = document.getElementById("endpoints");
  root.replaceChildren();
  if (!groups.size) {
    root.append(el("p", { class: "note" }, "No endpoint is served."));
    return;
  }
  for (const instances of groups.values()) {
    const first = instances[0];
    const rows = first.containers.map((container, i) => {
      const ups = instances.filter((e) => e.containers[i] && e.containers[i].up).length;
      const health =
        instances.length === 1 ? (ups ? "up" : "down") : `${ups}/${instances.length} up`;
      const m = byKey.get(seriesKey(first.name, first.variant, container.hostname));
      const lat = m ? m.latency_ms : {};
      return el(
        "tr",
        { dataset: { testid: "container", hostname: container.hostname } },
        el("td", { class: "mono" }, container.hostname),
        el("td", { class: ups === instances.length ? "up" : "down" }, health),
        el("td", { class: "mono note" }, instances.map((e) => e.containers[i].url).join(" ")),
        el("td", { dataset: { testid: "invocations" } }, m ? m.invocations : 0),
        el("td", {}, m ? m.errors_4xx : 0),
        el("td", {}, m ? m.errors_5xx : 0),
        el("td", {}, `${fmt(lat.p50, 2)} / ${fmt(lat.p90, 2)} / ${fmt(lat.p99, 2)}`),
      );
    });
    const gateway = byKey.get(seriesKey(first.name, first.variant, ""));
    const charts = first.containers.map((container) => {
      const history =
        state.history.get(seriesKey(first.name, first.variant, container.hostname)) || [];
      return el(
        "div",
        { class: "chart-group", dataset: { testid: "charts", hostname: container.hostname } },
        el("div", { class: "mono" }, container.hostname),
        el(
          "div",
          { class: "charts" },
          chart("invocations", history, ["inv"], "/s"),
          chart("errors (4xx + 5xx)", history, ["err"], "/s"),
          chart("latency", history, ["p50", "p99"], "ms"),
        ),
      );
    });
    root.append(
      el(
        "div",
        { class: "endpoint", dataset: { testid: "endpoint", name: first.name } },
        el(
          "h3",
          {},
          first.name,
          el(
            "span",
            { class: "mode", dataset: { testid: "mode" } },
            `${first.mode} · variant ${first.variant}` +
              (instances.length > 1 ? ` · ${instances.length} instances` : ""),
          ),
        ),
        el(
          "table",
          {},
          el(
            "thead",
            {},
            el(
              "tr",
              {},
              ["container", "health", "url", "invocations", "4xx", "5xx", "p50 / p90 / p99 ms"].map(
                (h) => el("th", {}, h),
              ),
            ),
          ),
          el("tbody", {}, rows),
        ),
        gateway && gateway.errors_4xx + gateway.errors_5xx
          ? el(
              "p",
              { class: "note" },
              `Refused by the gateway itself: ${gateway.errors_4xx} 4xx, ${gateway.errors_5xx} 5xx`,
            )
          : null,
        charts,
      ),
    );
  }
}

// --- the form -------------------------------------------------------------------------------

function fillForm() {
  const endpointSelect = document.getElementById("send-endpoint");
  const names = [...new Set(state.endpoints.map((e) => e.name))];
  const current = [...endpointSelect.options].map((o) => o.value);
  if (names.join("\n") !== current.join("\n")) {
    const chosen = endpointSelect.value;
    endpointSelect.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    if (names.includes(chosen)) endpointSelect.value = chosen;
    fillHostnames();
  }
}

function fillHostnames() {
  const name = document.getElementById("send-endpoint").value;
  const endpoint = state.endpoints.find((e) => e.name === name);
  const select = document.getElementById("send-hostname");
  const hostnames = endpoint ? endpoint.containers.map((c) => c.hostname) : [];
  const options = [el("option", { value: "" }, "(none)")];
  for (const h of hostnames) options.push(el("option", { value: h }, h));
  select.replaceChildren(...options);
  if (endpoint && endpoint.mode === "Direct" && hostnames.length) select.value = hostnames[0];
}

async function send(event) {
  event.preventDefault();
  const name = document.getElementById("send-endpoint").value;
  if (!name) return;
  const headers = { "Content-Type": document.getElementById("send-content-type").value };
  const accept = document.getElementById("send-accept").value.trim();
  if (accept) headers.Accept = accept;
  const hostname = document.getElementById("send-hostname").value;
  if (hostname) headers["X-Amzn-SageMaker-Target-Container-Hostname"] = hostname;
  const variant = document.getElementById("send-variant").value.trim();
  if (variant) headers["X-Amzn-SageMaker-Target-Variant"] = variant;
  const model = document.getElementById("send-model").value.trim();
  if (model) headers["X-Amzn-SageMaker-Target-Model"] = model;
  const answer = document.getElementById("answer");
  const status = document.getElementById("answer-status");
  const table = document.getElementById("answer-headers");
  const body = document.getElementById("answer-body");
  answer.hidden = false;
  status.textContent = "sending…";
  table.replaceChildren();
  body.textContent = "";
  try {
    const response = await fetch(`/endpoints/${encodeURIComponent(name)}/invocations`, {
      method: "POST",
      headers,
      body: document.getElementById("send-body").value,
      cache: "no-store",
    });
    const text = await response.text();
    status.textContent = `${response.status} ${response.statusText}`;
    status.className = response.ok ? "up" : "down";
    for (const [key, value] of response.headers) {
      table.append(el("tr", {}, el("th", {}, key), el("td", { class: "mono" }, value)));
    }
    body.textContent = text;
    const requestId = response.headers.get("x-amzn-RequestId");
    if (requestId) state.selected = requestId;
    await poll();
  } catch (error) {
    status.textContent = `failed: ${error.message}`;
    status.className = "down";
  }
}

// --- the requests and their hops -------------------------------------------------------------

function requestsOf(hops) {
  const byId = new Map();
  hops.forEach((hop, i) => {
    const id = hop.request_id || `(no id ${i})`;
    if (!byId.has(id)) byId.set(id, []);
    byId.get(id).push(hop);
  });
  return [...byId.entries()]
    .map(([id, list]) => ({ id, hops: list, time: list[0].time }))
    .sort((a, b) => b.time - a.time)
    .slice(0, MAX_REQUESTS);
}

function statusClass(status) {
  return status === null ? "snone" : `s${String(status)[0]}`;
}

function renderRequests() {
  const tbody = document.querySelector("#requests tbody");
  const requests = requestsOf(state.hops);
  tbody.replaceChildren(
    ...requests.map((r) =>
      el(
        "tr",
        {
          class: r.id === state.selected ? "selected" : "",
          dataset: { testid: "request", requestId: r.id },
          onclick: () => {
            state.selected = r.id;
            renderRequests();
          },
        },
        el("td", {}, clock(r.time)),
        el("td", { class: "mono", title: r.id }, r.id.slice(0, 8)),
        el("td", {}, r.hops[0].endpoint),
        el(
          "td",
          {},
          r.hops.map((h, n) => [
            n ? el("span", { class: "note" }, "→ ") : null,
            el(
              "span",
              { class: `hopchip ${statusClass(h.status)}`, dataset: { testid: "hop" } },
              `${h.hostname} ${h.status === null ? "no answer" : h.status}`,
            ),
          ]),
        ),
        el("td", {}, fmt(r.hops.reduce((sum, h) => sum + h.latency_ms, 0), 1)),
      ),
    ),
  );
  if (!requests.length) {
    tbody.append(el("tr", {}, el("td", { colspan: 5, class: "note" }, "No request yet.")));
  }
  renderDetail(requests.find((r) => r.id === state.selected));
}

function headerTable(rows) {
  return el(
    "table",
    { class: "headers" },
    rows
      .filter(([, value]) => value !== null && value !== undefined)
      .map(([key, value]) => el("tr", {}, el("th", {}, key), el("td", { class: "mono" }, value))),
  );
}

function renderDetail(request) {
  const detail = document.getElementById("detail");
  if (!request) {
    detail.replaceChildren(
      el("p", { class: "note" }, "Click a request to see its hops' headers and bodies."),
    );
    return;
  }
  const parts = [el("h3", {}, "Request ", el("span", { class: "mono" }, request.id))];
  request.hops.forEach((hop, n) => {
    parts.push(
      el(
        "div",
        { class: "hop", dataset: { testid: "hop-detail", hostname: hop.hostname } },
        el(
          "h3",
          {},
          `${n + 1}. ${hop.endpoint}/${hop.hostname} `,
          el("span", { class: statusClass(hop.status) }, hop.status ?? "no answer"),
          ` in ${fmt(hop.latency_ms, 2)} ms`,
        ),
        el("div", { class: "note" }, "sent to the container"),
        headerTable([
          ["Content-Type", hop.content_type],
          ["Accept", hop.accept],
          ["Content-Length", hop.request_size],
          ["x-amzn-RequestId", hop.request_id || null],
        ]),
        "request_body" in hop ? el("pre", { dataset: { testid: "request-body" } }, hop.request_body) : null,
        el("div", { class: "note" }, "answered"),
        headerTable([
          ["Status", hop.status ?? "no answer"],
          ["Content-Type", hop.response_content_type],
          ["Content-Length", hop.response_size ?? "unknown (a stream)"],
        ]),
        "response_body" in hop
          ? el("pre", { dataset: { testid: "response-body" } }, hop.response_body)
          : null,
      ),
    );
  });
  if (!state.bodies) {
    parts.push(el("p", { class: "note" }, "Bodies are not recorded: start with --trace-bodies."));
  }
  detail.replaceChildren(...parts);
}

// --- polling --------------------------------------------------------------------------------

let polling = null;

async function poll() {
  if (polling) return polling;
  polling = (async () => {
    const status = document.getElementById("status");
    try {
      const [endpoints, metrics, trace] = await Promise.all([
        getJSON("/endpoints"),
        getJSON("/metrics"),
        getJSON("/trace?limit=300"),
      ]);
      const now = Date.now();
      state.endpoints = endpoints.endpoints;
      record(metrics.containers, now);
      renderEndpoints(metrics.containers);
      fillForm();
      state.bodies = trace.bodies;
      document.getElementById("bodies").textContent = trace.bodies
        ? "bodies recorded (--trace-bodies)"
        : "bodies not recorded";
      const hops = trace.hops;
      const last = hops.length ? hops[hops.length - 1] : null;
      const signature = `${hops.length}|${last ? `${last.time}|${last.request_id}` : ""}|${state.selected}`;
      state.hops = hops;
      if (signature !== state.hopsSignature) {
        state.hopsSignature = signature;
        renderRequests();
      }
      status.textContent = `live · ${clock(now / 1000)}`;
      status.className = "status ok";
    } catch (error) {
      status.textContent = `cannot read the gateway: ${error.message}`;
      status.className = "status bad";
    }
  })();
  try {
    await polling;
  } finally {
    polling = null;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("send").addEventListener("submit", send);
  document.getElementById("send-endpoint").addEventListener("change", fillHostnames);
  poll();
  setInterval(poll, POLL_MS);
});
