// The gateway dashboard: polls /status (same origin) every second and redraws the tables.
// Every value from the gateway is set as text (textContent), never parsed as HTML, so device
// ids, class names and alert messages cannot inject markup. When the gateway is unreachable
// (stopped, restarting) the page says so and keeps polling; it recovers by itself.
// `tinyml fleet run` serves this page too: its /status names devices by site and has no
// ports, outbox, missing or frame counts, which show as "-".
"use strict";

const POLL_MS = 1000;
const SVG = "http://www.w3.org/2000/svg";

function cell(row, text, field, numeric) {
  const td = document.createElement("td");
  td.textContent = text;
  if (field) td.dataset.field = field;
  if (numeric) td.className = "n";
  row.appendChild(td);
  return td;
}

function num(v, digits) {
  return v === null || v === undefined ? "-" : Number(v).toFixed(digits);
}

function ago(t, now) {
  if (t === null || t === undefined) return "-";
  const s = Math.max(0, now - t);
  return s < 120 ? `${s.toFixed(0)} s ago` : s < 7200 ? `${(s / 60).toFixed(0)} min ago` : `${(s / 3600).toFixed(1)} h ago`;
}

function sparkline(scores) {
  const w = 120, h = 22, svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  if (scores.length > 1) {
    const lo = Math.min(...scores), hi = Math.max(...scores), span = hi - lo || 1;
    const pts = scores.map((s, i) => `${(i * (w - 2) / (scores.length - 1) + 1).toFixed(1)},` +
                                     `${(h - 2 - (s - lo) / span * (h - 4)).toFixed(1)}`);
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", pts.join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "#1f77b4");
    line.setAttribute("stroke-width", "1.3");
    svg.appendChild(line);
  }
  return svg;
}

function fill(tableId, items, build) {
  const body = document.querySelector(`#${tableId} tbody`);
  const rows = items.map((item) => {
    const tr = document.createElement("tr");
    build(tr, item);
    return tr;
  });
  body.replaceChildren(...rows);
}

function render(snap) {
  const now = snap.at;
  document.getElementById("site").textContent = snap.gateway ? `site ${snap.gateway.site}` : "";
  document.getElementById("results").textContent = snap.results;
  document.getElementById("outbox").textContent = snap.outbox ?? "-";
  const broker = document.getElementById("broker");
  if (!snap.mqtt) {
    broker.textContent = "not configured";
    broker.dataset.state = "none";
  } else {
    broker.textContent = `${snap.mqtt.broker}: ${snap.mqtt.connected ? "connected" : "disconnected"}`;
    broker.dataset.state = snap.mqtt.connected ? "connected" : "disconnected";
  }
  document.getElementById("started").textContent =
    snap.gateway ? new Date(snap.gateway.started_at * 1000).toLocaleTimeString() : "-";
  document.getElementById("updated").textContent = new Date(now * 1000).toLocaleTimeString();

  const name = (x) => (x.site ? `${x.site}/${x.device}` : x.device);  // fleet rows carry their site
  fill("devices", snap.devices, (tr, d) => {
    tr.dataset.device = d.device;
    tr.dataset.state = d.state;
    cell(tr, name(d), "device");
    cell(tr, d.state, "state").className = `state-${d.state}`;
    cell(tr, d.board || "-", "board");
    cell(tr, d.last ? (d.last.class ?? `label ${d.last.label}`) : "-", "last_class");
    cell(tr, num(d.results_per_s, 1), "results_per_s", true);
    cell(tr, "", "scores").appendChild(sparkline(d.scores || []));
    cell(tr, d.last ? num(d.last.score, 4) : "-", "last_score", true);
    cell(tr, d.results, "results", true);
    cell(tr, d.missing ?? "-", "missing", true);
    cell(tr, d.reboots ?? "-", "reboots", true);
    cell(tr, d.bad_frames === undefined ? "-" : `${d.bad_frames} (${(100 * d.frame_error_rate).toFixed(1)} %)`,
         "bad_frames", true);
    const drift = d.drift;
    const td = cell(tr, drift && drift.value !== null ? `${(drift.method || "drift").toUpperCase()} ${num(drift.value, 3)}`
                    : "-", "drift", true);
    if (drift && (drift.firing || drift.state === "firing")) td.classList.add("firing");
  });
  fill("alerts", snap.alerts, (tr, a) => {
    tr.dataset.device = a.device;
    tr.dataset.rule = a.rule;
    cell(tr, name(a), "device");
    cell(tr, a.rule, "rule").className = "firing";
    cell(tr, a.message || "", "message");
    cell(tr, ago(a.fired_at, now), "since");
  });
  fill("recent-alerts", snap.recent_alerts || [], (tr, a) => {
    tr.dataset.device = a.device;
    tr.dataset.rule = a.rule;
    cell(tr, a.device, "device");
    cell(tr, a.rule, "rule");
    cell(tr, a.cleared_at === null ? "open" : "cleared", "state").className = a.cleared_at === null ? "firing" : "";
    cell(tr, ago(a.fired_at, now), "fired");
    cell(tr, a.cleared_at === null ? "-" : ago(a.cleared_at, now), "cleared");
    cell(tr, a.message || "", "message");
  });
  fill("ports", snap.ports || [], (tr, p) => {
    tr.dataset.port = p.port;
    tr.dataset.state = p.connected ? "connected" : "down";
    cell(tr, p.port, "port");
    cell(tr, p.connected ? "connected" : "down", "state");
    cell(tr, p.device || "-", "device");
    cell(tr, p.connects, "connects", true);
    cell(tr, p.bad_frames, "bad_frames", true);
    cell(tr, p.last_error || "", "last_error");
  });
}

function setLink(up, detail) {
  const link = document.getElementById("link");
  link.dataset.state = up ? "live" : "down";
  link.textContent = up ? "live" : `gateway unreachable (${detail}); retrying`;
}

async function poll() {
  try {
    const response = await fetch("/status", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const snap = await response.json();
    render(snap);
    document.body.dataset.at = snap.at;
    setLink(true);
  } catch (err) {
    setLink(false, err.message);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
