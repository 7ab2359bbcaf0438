// edgemq dashboard: devices, a device's charts, state and messages, alerts, MQTT sessions, rules, bridges
// (the furthest behind first), broker health.
// Live through server-sent events (/api/v1/events); polls /health when they are unavailable.
"use strict";

const state = { devices: new Map(), selected: null, window: "15m", metric: null, lastReceived: null, lastTick: null };
const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get("token") || localStorage.getItem("edgemqToken");
if (token) localStorage.setItem("edgemqToken", token);

async function api(path, options = {}) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const response = await fetch(path, { ...options, headers });
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function timeText(iso) {
  if (!iso) return "–";
  const t = new Date(iso);
  return t.toLocaleString();
}

function valuesText(values) {
  return Object.entries(values || {})
    .filter(([k]) => !["ts", "t", "timestamp"].includes(k))
    .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : Number(v).toFixed(2)}`)
    .join(", ");
}

function statusCell(online) {
  const td = cell(online ? "ONLINE" : "OFFLINE", "status " + (online ? "online" : "offline"));
  return td;
}

// Devices ------------------------------------------------------------------------------------

async function loadDevices() {
  const page = await api("/api/v1/devices?limit=1000");
  state.devices.clear();
  for (const d of page.items) state.devices.set(d.device_id, d);
  renderDevices();
}

function renderDevices() {
  const body = $("devices").querySelector("tbody");
  body.replaceChildren();
  for (const d of state.devices.values()) {
    const tr = document.createElement("tr");
    tr.className = "clickable" + (d.device_id === state.selected ? " selected" : "");
    tr.dataset.device = d.device_id;
    tr.append(cell(d.device_id), statusCell(d.online), cell(timeText(d.last_seen)),
              cell(valuesText(d.latest), "values"), cell(String(d.open_alerts || 0)));
    tr.addEventListener("click", () => selectDevice(d.device_id));
    body.append(tr);
  }
  $("devices-empty").hidden = state.devices.size > 0;
}

// One device ---------------------------------------------------------------------------------

async function selectDevice(id) {
  state.selected = id;
  const d = await api("/api/v1/devices/" + encodeURIComponent(id));
  state.devices.set(id, d);
  renderDevices();
  $("device-view").hidden = false;
  $("dv-name").textContent = id;
  const status = $("dv-status");
  status.textContent = d.online ? "ONLINE" : "OFFLINE";
  status.className = "status " + (d.online ? "online" : "offline");
  const select = $("dv-metric");
  const metrics = d.metrics.length ? d.metrics : Object.keys(d.latest || {});
  if (!metrics.includes(state.metric)) state.metric = metrics.includes("temperature") ? "temperature" : metrics[0] || null;
  select.replaceChildren(...metrics.map((m) => new Option(m, m, false, m === state.metric)));
  const stateBody = $("dv-state").querySelector("tbody");
  stateBody.replaceChildren(...Object.entries(d.state).map(([k, v]) => {
    const tr = document.createElement("tr");
    tr.append(cell(k), cell(v));
    return tr;
  }));
  if (!Object.keys(d.state).length) stateBody.innerHTML = "<tr><td class=empty>No state reported.</td></tr>";
  await Promise.all([loadChart(), loadMessages()]);
}

const WINDOWS = { "15m": [15 * 60e3, "10s"], "1h": [3600e3, "1m"], "24h": [86400e3, "5m"], "7d": [7 * 86400e3, "30m"] };

async function loadChart() {
  const canvas = $("chart");
  if (!state.selected || !state.metric) {
    drawChart(canvas, []);
    return;
  }
  const [span, bucket] = WINDOWS[state.window];
  const to = Date.now();
  const path = `/api/v1/devices/${encodeURIComponent(state.selected)}/series?metric=${encodeURIComponent(state.metric)}` +
    `&from=${to - span}&to=${to + 1000}&bucket=${bucket}`;
  const series = await api(path);
  drawChart(canvas, series.points, to - span, to);
  const n = series.points.reduce((sum, p) => sum + p.count, 0);
  $("chart-info").textContent = `${series.points.length} buckets of ${bucket}, ${n} readings.`;
}

function drawChart(canvas, points, from, to) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 800, h = canvas.clientHeight || 260;
  canvas.width = w * ratio;
  canvas.height = h * ratio;
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, w, h);
  canvas.dataset.points = String(points.length);
  g.fillStyle = "#5c6675";
  g.font = "12px system-ui, sans-serif";
  if (!points.length) {
    g.fillText("No readings in this window.", 12, 24);
    return;
  }
  const lo = Math.min(...points.map((p) => p.min)), hi = Math.max(...points.map((p) => p.max));
  const pad = (hi - lo) * 0.1 || 1, ymin = lo - pad, ymax = hi + pad;
  const left = 48, right = 8, top = 8, bottom = 20;
  const x = (t) => left + ((t - from) / (to - from)) * (w - left - right);
  const y = (v) => top + (1 - (v - ymin) / (ymax - ymin)) * (h - top - bottom);
  g.fillText(hi.toFixed(2), 4, y(hi) + 4);
  g.fillText(lo.toFixed(2), 4, y(lo) + 4);
  g.fillText(new Date(from).toLocaleTimeString(), left, h - 4);
  g.fillText(new Date(to).toLocaleTimeString(), w - right - 60, h - 4);
  g.fillStyle = "rgba(39, 87, 199, 0.15)";
  g.beginPath();
  points.forEach((p, i) => (i ? g.lineTo : g.moveTo).call(g, x(p.t_ms), y(p.max)));
  [...points].reverse().forEach((p) => g.lineTo(x(p.t_ms), y(p.min)));
  g.closePath();
  g.fill();
  g.strokeStyle = "#2757c7";
  g.lineWidth = 2;
  g.beginPath();
  points.forEach((p, i) => (i ? g.lineTo : g.moveTo).call(g, x(p.t_ms), y(p.avg)));
  g.stroke();
  g.fillStyle = "#2757c7";
  for (const p of points) g.fillRect(x(p.t_ms) - 2, y(p.avg) - 2, 4, 4);
}

async function loadMessages() {
  const page = await api(`/api/v1/messages?device_id=${encodeURIComponent(state.selected)}&limit=20`);
  const body = $("dv-messages").querySelector("tbody");
  body.replaceChildren(...page.items.map((m) => {
    const tr = document.createElement("tr");
    tr.append(cell(timeText(m.received_at)), cell(m.topic), cell(JSON.stringify(m.payload), "payload"));
    return tr;
  }));
}

// Alerts -------------------------------------------------------------------------------------

async function loadAlerts() {
  const params = new URLSearchParams({ limit: "100", state: $("f-state").value });
  if ($("f-device").value.trim()) params.set("device_id", $("f-device").value.trim());
  if ($("f-type").value.trim()) params.set("type", $("f-type").value.trim());
  const page = await api("/api/v1/alerts?" + params);
  const body = $("alerts").querySelector("tbody");
  body.replaceChildren(...page.items.map((a) => {
    const tr = document.createElement("tr");
    tr.dataset.alert = a.id;
    const value = a.value === null ? "" : `${a.metric} ${a.value} (limit ${a.threshold})`;
    tr.append(cell(timeText(a.raised_at)), cell(a.device_id), cell(a.type), cell(value),
              cell(a.open ? "OPEN" : "CLEARED " + timeText(a.cleared_at), "status " + (a.open ? "open" : "cleared")));
    const action = document.createElement("td");
    if (a.open) {
      const button = document.createElement("button");
      button.textContent = "Clear";
      button.className = "clear";
      button.addEventListener("click", () => clearAlert(a.id));
      action.append(button);
    }
    tr.append(action);
    return tr;
  }));
}

async function clearAlert(id) {
  try {
    await api(`/api/v1/alerts/${id}/clear`, { method: "POST" });
  } catch (e) {
    console.warn("clear alert", id, e.message);
  }
  await Promise.all([loadAlerts(), loadDevices()]);
}

// Sessions -----------------------------------------------------------------------------------

async function loadSessions() {
  const page = await api("/api/v1/sessions");
  const body = $("sessions").querySelector("tbody");
  body.replaceChildren(...page.items.map((s) => {
    const tr = document.createElement("tr");
    tr.dataset.client = s.client_id;
    const away = s.connected ? "connected" : "away" + (s.disconnected_at ? " since " + timeText(s.disconnected_at) : "");
    const filters = s.subscriptions.map((f) => `${f.filter} (QoS ${f.qos})`).join(", ");
    const queued = s.queued_messages + (s.queued_bytes ? ` (${s.queued_bytes} B)` : "");
    tr.append(cell(s.client_id), cell(s.protocol || "–"), cell(away, "status " + (s.connected ? "online" : "offline")),
              cell(filters), cell(String(s.in_flight)), cell(queued), cell(s.catching_up ? String(s.behind) : "0"),
              cell(Object.entries(s.dropped || {}).map(([why, n]) => `${n} ${why}`).join(", ") || "0"));
    return tr;
  }));
}

// Rules --------------------------------------------------------------------------------------

function condition(c) {
  if (c.on_change) return "change" + (c.critical && c.critical.length ? " of " + c.critical.join(", ") : "");
  if (c.anomaly) return `anomaly (k ${c.anomaly.k}, window ${c.anomaly.window})`;
  return [c.min != null ? `< ${c.min}` : null, c.max != null ? `> ${c.max}` : null].filter(Boolean).join(" or ");
}

function actionText(a) {
  const target = a.kind === "webhook" ? a.config.webhook : a.config.publish;
  const failed = a.failed ? `, ${a.failed} failed` : "";
  const gaveUp = a.given_up ? `, ${a.given_up} given up` : "";
  return `${a.config.on || "raise"}: ${a.kind} ${target} (${a.fired} fired${failed}${gaveUp})`;
}

async function loadRules() {
  const page = await api("/api/v1/rules");
  const body = $("rules").querySelector("tbody");
  body.replaceChildren(...page.items.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.rule = String(r.rule);
    tr.append(cell(String(r.rule)), cell(r.type), cell(`${r.config.filter} ${r.config.metric}`), cell(condition(r.config)),
              cell(String(r.raised)), cell(String(r.cleared)), cell(r.actions.map(actionText).join("; ") || "–"));
    return tr;
  }));
  $("rules-outbox").textContent = page.webhook_outbox ? `${page.webhook_outbox} webhook calls waiting to be sent.` : "";
}

// Bridges ------------------------------------------------------------------------------------

async function loadBridges() {
  const page = await api("/api/v1/bridges");
  $("bridges-section").hidden = page.items.length === 0;
  const body = $("bridges").querySelector("tbody");
  body.replaceChildren(...page.items.map((b) => {
    const tr = document.createElement("tr");
    tr.dataset.bridge = b.name;
    const state = b.connected ? "connected" : "down" + (b.last_error ? ": " + b.last_error : "");
    const failures = b.connection_failures + (b.refused ? `, ${b.refused} refused` : "");
    tr.append(cell(b.name), cell(`${b.address} as ${b.client_id}`), cell(state, "status " + (b.connected ? "online" : "offline")),
              cell(String(b.backlog)), cell(b.behind_seconds ? `${b.behind_seconds} s` : "0"), cell(String(b.forwarded)),
              cell(String(b.brought_in)), cell(String(failures)));
    return tr;
  }));
}

// Live ---------------------------------------------------------------------------------------

function showHealth(s) {
  $("h-clients").textContent = s.clients;
  $("h-stored").textContent = s.stored;
  $("h-errors").textContent = s.errors;
  $("h-queued").textContent = s.queued;
  const now = Date.now();
  if (state.lastReceived !== null && now > state.lastTick) {
    const rate = ((s.received - state.lastReceived) * 1000) / (now - state.lastTick);
    $("h-rate").textContent = Math.max(0, rate).toFixed(rate < 10 ? 1 : 0);
  }
  state.lastReceived = s.received;
  state.lastTick = now;
}

const pending = new Map();
function soon(name, fn, ms = 300) {
  if (pending.has(name)) return;
  pending.set(name, setTimeout(() => { pending.delete(name); fn().catch((e) => console.warn(name, e.message)); }, ms));
}

function onMessage(m) {
  const d = state.devices.get(m.device_id);
  if (!d) { soon("devices", loadDevices); return; }
  d.latest = { ...d.latest, ...m.values };
  d.last_seen = m.received_at;
  d.online = true;
  soon("render", async () => renderDevices(), 100);
  if (m.device_id === state.selected) {
    soon("chart", loadChart, 1000);
    soon("messages", loadMessages, 500);
  }
}

function connect() {
  const url = "/api/v1/events" + (token ? "?access_token=" + encodeURIComponent(token) : "");
  const events = new EventSource(url);
  events.addEventListener("open", () => { $("h-live").textContent = "live"; });
  events.addEventListener("stats", (e) => showHealth(JSON.parse(e.data)));
  events.addEventListener("message", (e) => onMessage(JSON.parse(e.data)));
  events.addEventListener("alert", () => { soon("alerts", loadAlerts); soon("devices", loadDevices); });
  events.addEventListener("device", () => soon("devices", loadDevices));
  events.addEventListener("error", () => {
    $("h-live").textContent = "reconnecting (polling)";
    soon("poll", poll, 2000);
  });
}

async function poll() {
  const h = await api("/health");
  showHealth({ clients: h.connected_clients, stored: h.messages_stored, errors: h.errors, queued: h.queue_depth, received: h.messages_received });
  await loadDevices();
}

// Start --------------------------------------------------------------------------------------

$("dv-metric").addEventListener("change", (e) => { state.metric = e.target.value; loadChart(); });
for (const b of $("dv-windows").querySelectorAll("button")) {
  b.addEventListener("click", () => {
    state.window = b.dataset.window;
    for (const other of $("dv-windows").querySelectorAll("button")) other.classList.toggle("selected", other === b);
    loadChart();
  });
}
for (const id of ["f-device", "f-type", "f-state"]) $(id).addEventListener("change", loadAlerts);
Promise.all([loadDevices(), loadAlerts(), loadSessions(), loadBridges(), loadRules()]).catch((e) => console.warn("load", e.message));
setInterval(() => loadSessions().catch((e) => console.warn("sessions", e.message)), 2000);
setInterval(() => loadBridges().catch((e) => console.warn("bridges", e.message)), 2000);
setInterval(() => loadRules().catch((e) => console.warn("rules", e.message)), 5000);
connect();
