// cutover's web console: follows GET /v1/events (Server-Sent Events read through fetch, so that
// the bearer token travels in the Authorization header as with every REST call), keeps a model
// of hosts, agents, ports and migrations from its snapshot and change events, and redraws the
// tables and each migration's timeline. Actions go through the REST API. No polling: a lost
// stream is reopened (with backoff) and starts again from a fresh snapshot.
"use strict";

const model = {
  generation: 0, hosts: new Map(), agents: new Map(), networks: new Map(),
  ports: new Map(), migrations: new Map(),
};
const $ = (id) => document.getElementById(id);
const TERMINAL = new Set(["completed", "rolled_back", "rejected"]);
// The migration's states, in the order they happen, as drawn on its timeline.
const PHASES = ["requested", "pending_approval", "preparing", "ready", "migrating",
  "cutting_over", "rolling_back"];
const ENDS = ["completed", "rolled_back", "rejected"];
// Every other timeline entry is a point in time (source_paused, precopy_pass_2, garps_sent, ...):
// marked as an event, whatever its name (docs/operations.md lists them).

function token() { return sessionStorage.getItem("cutover-token") || ""; }
function authHeaders() {
  const t = token();
  return t ? { Authorization: "Bearer " + t } : {};
}

function setStatus(state, text) {
  const s = $("status");
  s.dataset.state = state;
  s.textContent = text;
}

// ---- the event stream ----

let retryMs = 1000;
async function follow() {
  let res;
  try {
    res = await fetch("/v1/events", { headers: authHeaders(), cache: "no-store" });
  } catch (e) {
    return reconnect("cannot reach the controller");
  }
  if (res.status === 401 || res.status === 403) {
    setStatus("error", res.status === 401 ? "a token is needed" : "this token may not read");
    $("login").hidden = false;
    return;  // waits for the form
  }
  if (!res.ok) return reconnect("the controller answered " + res.status);
  $("login").hidden = true;
  setStatus("live", "live");
  retryMs = 1000;
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (e) {
      break;
    }
    if (chunk.done) break;
    buf += decoder.decode(chunk.value, { stream: true });
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      dispatch(buf.slice(0, end));
      buf = buf.slice(end + 2);
    }
  }
  reconnect("the event stream ended");
}

function reconnect(why) {
  setStatus("error", why + "; reconnecting in " + Math.round(retryMs / 1000) + " s");
  setTimeout(follow, retryMs);
  retryMs = Math.min(retryMs * 2, 10000);
}

function dispatch(block) {
  let event = "message", data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event: ")) event = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  if (!data) return;  // a keepalive comment
  const d = JSON.parse(data);
  switch (event) {
    case "snapshot":
      model.generation = d.generation;
      for (const k of ["hosts", "networks", "ports", "migrations"]) {
        model[k] = new Map(d[k].map((o) => [o.id, o]));
      }
      model.agents = new Map(d.agents.map((a) => [a.host, a]));
      break;
    case "topology":
      model.generation = d.generation;
      model.hosts = new Map(d.hosts.map((o) => [o.id, o]));
      model.networks = new Map(d.networks.map((o) => [o.id, o]));
      break;
    case "port": model.ports.set(d.id, d); break;
    case "port_removed": model.ports.delete(d.id); break;
    case "agent": model.agents.set(d.host, d); break;
    case "migration": model.migrations.set(d.id, d); break;
    case "generation": model.generation = d.generation; break;
    default: return;
  }
  scheduleRender();
}

// ---- drawing ----

let renderPending = false;
function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => { renderPending = false; render(); });
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("data-")) e.dataset[k.slice(5).replace(/-(.)/g, (_, c) => c.toUpperCase())] = v;
    else if (k === "class") e.className = v;
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ""));
  return e;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function ms(us) { return (us / 1000).toFixed(us < 10000 ? 1 : 0) + " ms"; }

function pauseUs(m) {
  const t = m.timeline || {};
  return t.source_paused && t.destination_bound ? t.destination_bound - t.source_paused : null;
}

// One line per phase (its bar from its start to the next phase's) and per event (a diamond),
// on a time axis from the request; the VM's pause hatched across all lines. Every line is
// labelled with its name and its time from the request, so nothing depends on colour.
function timeline(m) {
  const t = m.timeline || {};
  const t0 = t.requested ?? Math.min(...Object.values(t));
  const times = Object.values(t);
  const last = Math.max(...times);
  const span = Math.max(last - t0, 1);
  const phases = PHASES.filter((p) => t[p] !== undefined).sort((a, b) => t[a] - t[b]);
  const end = ENDS.find((p) => t[p] !== undefined);
  const events = Object.keys(t).filter((p) => !PHASES.includes(p) && !ENDS.includes(p))
    .sort((a, b) => t[a] - t[b]);
  const lines = phases.length + events.length + (end ? 1 : 0);
  const labelW = 150, barW = 420, timeW = 140, rowH = 16, top = 4;
  const W = labelW + barW + timeW, H = top + lines * rowH + 18;
  const x = (us) => labelW + ((us - t0) / span) * barW;
  const root = svg("svg", { class: "timeline", width: W, height: H, viewBox: `0 0 ${W} ${H}`,
    role: "img", "aria-label": `timeline of ${m.id}` });
  const p = pauseUs(m);
  if (p !== null) {
    const g = svg("g", { class: "pause-span", "data-phase": "vm_pause" });
    g.append(svg("rect", { class: "pause", x: x(t.source_paused), y: top,
      width: Math.max(x(t.destination_bound) - x(t.source_paused), 2), height: lines * rowH }));
    g.append(svg("title", {}, `VM pause: ${ms(p)}`));
    root.append(g);
  }
  let row = 0;
  const label = (g, name, at, extra) => {
    const y = top + row * rowH + rowH - 4;
    g.append(svg("text", { x: 0, y }, name));
    g.append(svg("text", { x: labelW + barW + 6, y }, `+${ms(at - t0)}${extra || ""}`));
  };
  phases.forEach((name, i) => {
    const from = t[name];
    const to = i + 1 < phases.length ? t[phases[i + 1]] : (end ? t[end] : last);
    const g = svg("g", { class: "phase", "data-phase": name });
    g.append(svg("rect", { class: "bar", x: x(from), y: top + row * rowH + 3,
      width: Math.max(x(to) - x(from), 2), height: rowH - 6 }));
    label(g, name, from, ` (${ms(to - from)})`);
    root.append(g);
    row++;
  });
  for (const name of events) {
    const g = svg("g", { class: "event-mark", "data-phase": name });
    const cx = x(t[name]), cy = top + row * rowH + rowH / 2;
    g.append(svg("path", { class: "event", d: `M${cx} ${cy - 5}L${cx + 5} ${cy}L${cx} ${cy + 5}L${cx - 5} ${cy}Z` }));
    label(g, name, t[name]);
    root.append(g);
    row++;
  }
  if (end) {
    const g = svg("g", { class: "phase", "data-phase": end });
    const cx = x(t[end]), cy = top + row * rowH + rowH / 2;
    g.append(svg("rect", { class: "bar", x: cx - 4, y: cy - 4, width: 8, height: 8 }));
    label(g, end, t[end]);
    root.append(g);
    row++;
  }
  const ay = top + lines * rowH + 4;
  root.append(svg("line", { class: "axis", x1: labelW, x2: labelW + barW, y1: ay, y2: ay }));
  root.append(svg("text", { x: labelW, y: ay + 12 }, "0"));
  root.append(svg("text", { x: labelW + barW, y: ay + 12, "text-anchor": "end" }, ms(span)));
  return root;
}

// "0 of 15000 lost at 1000 pps; TCP 8/8 (scripts/lab)", or "" when nobody measured it.
function measured(x) {
  if (!x) return "";
  let s = `${x.lost} of ${x.sent} lost at ${x.pps} pps`;
  if (x.tcp_sessions) s += `; TCP ${x.tcp_survived}/${x.tcp_sessions}`;
  return s + (x.by ? ` (${x.by})` : "");
}

function migrationRow(m) {
  const what = m.vm ? `${m.vm} (${m.port})` : m.port;
  const actions = el("td");
  if (m.state === "pending_approval") {
    actions.append(el("button", { type: "button", class: "approve", onclick: () => act(m, "approve") }, "Approve"));
  }
  if (!TERMINAL.has(m.state) && m.state !== "rolling_back") {
    actions.append(el("button", { type: "button", class: "cancel", onclick: () => act(m, "cancel") }, "Cancel"));
  }
  const p = pauseUs(m);
  const row = el("tr", { "data-migration": m.id, "data-state": m.state },
    el("td", {}, m.id + (m.group && m.group !== m.id ? ` (with ${m.group})` : "")),
    el("td", {}, what),
    el("td", {}, `${m.source} → ${m.destination}`),
    el("td", {}, el("span", { class: "state", "data-state": m.state }, m.state.replace("_", " "))),
    el("td", { class: "num" }, p === null ? "" : ms(p)),
    el("td", { class: "measured" }, measured(m.measured)),
    el("td", {}, m.reason || ""),
    actions);
  return row;
}

function timelineRow(m) {
  return el("tr", { class: "timeline", "data-timeline": m.id }, el("td", { colSpan: 8 }, timeline(m)));
}

function hostRow(h, a) {
  const vms = a ? Object.keys(a.vms || {}) : [];
  return el("tr", { "data-host": h.id },
    el("td", {}, h.id), el("td", {}, h.backend), el("td", {}, h.underlay_ip),
    el("td", {}, !a ? "never connected" : a.connected ? "● connected" : "○ disconnected"),
    el("td", { class: "num" }, a ? a.applied_generation : ""),
    el("td", { class: "num" }, a && a.connected ? a.lag : ""),
    el("td", { class: "num" }, a ? (a.bound_ports || []).length : ""),
    el("td", {}, vms.join(", ")));
}

function portRow(p, n) {
  return el("tr", { "data-port": p.id },
    el("td", {}, p.id), el("td", {}, n ? `${n.id} (${n.vni})` : p.network), el("td", {}, p.mac),
    el("td", {}, (p.ips || []).join(", ")), el("td", {}, p.host || "unplaced"),
    el("td", {}, p.migrating_to ? `→ ${p.migrating_to}` : ""));
}

// Redraws a table body from rows given as { key, sig, build }: a row whose signature has not
// changed keeps its element, so an event about one migration (or an agent's periodic report)
// leaves every other row, and a button under the pointer, in place.
const drawn = new WeakMap();  // tbody -> Map(key -> { sig, nodes })
function keyed(tbody, rows) {
  const before = drawn.get(tbody) || new Map(), after = new Map(), nodes = [];
  for (const r of rows) {
    const old = before.get(r.key);
    const kept = old && old.sig === r.sig ? old : { sig: r.sig, nodes: r.build() };
    after.set(r.key, kept);
    nodes.push(...kept.nodes);
  }
  drawn.set(tbody, after);
  const now = tbody.children;
  if (now.length !== nodes.length || nodes.some((n, i) => now[i] !== n)) tbody.replaceChildren(...nodes);
}

function render() {
  $("generation").textContent = `generation ${model.generation}`;
  // Migrations: the newest first (by when they were asked); a migration's row and its timeline
  // are drawn apart, so a new timeline event does not redraw the row's buttons.
  const ms_ = [...model.migrations.values()].sort(
    (a, b) => ((b.timeline || {}).requested || 0) - ((a.timeline || {}).requested || 0));
  keyed($("migrations").tBodies[0], ms_.flatMap((m) => {
    const { timeline: t, ...rest } = m;
    return [{ key: "row " + m.id, sig: JSON.stringify([rest, pauseUs(m)]), build: () => [migrationRow(m)] },
      { key: "timeline " + m.id, sig: JSON.stringify(t || {}), build: () => [timelineRow(m)] }];
  }));

  keyed($("hosts").tBodies[0], [...model.hosts.values()].map((h) => {
    const a = model.agents.get(h.id);
    return { key: h.id, sig: JSON.stringify([h, a]), build: () => [hostRow(h, a)] };
  }));

  keyed($("ports").tBodies[0], [...model.ports.values()].map((p) => {
    const n = model.networks.get(p.network);
    return { key: p.id, sig: JSON.stringify([p, n]), build: () => [portRow(p, n)] };
  }));

  renderMigrateForm();
}

// The VMs the agents report running, each on its host; destinations are the other hosts.
function renderMigrateForm() {
  const vmSel = $("migrate-vm"), toSel = $("migrate-to");
  const keepVm = vmSel.value, keepTo = toSel.value;
  const vms = [];
  for (const a of model.agents.values()) {
    if (!a.connected) continue;
    for (const name of Object.keys(a.vms || {})) vms.push({ name, host: a.host });
  }
  vms.sort((a, b) => a.name.localeCompare(b.name));
  vmSel.replaceChildren(...vms.map((v) => el("option", { value: v.name }, `${v.name} (on ${v.host})`)));
  if (vms.some((v) => v.name === keepVm)) vmSel.value = keepVm;
  const on = (vms.find((v) => v.name === vmSel.value) || {}).host;
  const hosts = [...model.hosts.keys()].filter((h) => h !== on);
  toSel.replaceChildren(...hosts.map((h) => el("option", { value: h }, h)));
  if (hosts.includes(keepTo)) toSel.value = keepTo;
  $("migrate-go").disabled = vms.length === 0 || hosts.length === 0;
}

// ---- actions ----

function said(ok, text) {
  const r = $("action-result");
  r.dataset.ok = ok;
  r.textContent = text;
}

async function rest(method, path, body) {
  const res = await fetch(path, {
    method, headers: { ...authHeaders(), "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (e) { /* not JSON */ }
  if (!res.ok) {
    const err = json && json.error;
    throw new Error(err ? `${err.message}${err.field ? ` (field ${err.field})` : ""}` : `${res.status}`);
  }
  return json;
}

async function act(m, what) {
  try {
    await rest("POST", `/v1/migrations/${encodeURIComponent(m.id)}/${what}`);
    said(true, `${what === "cancel" ? "cancel" : "approval"} of ${m.id} sent`);
  } catch (e) {
    said(false, `${what} ${m.id}: ${e.message}`);
  }
}

$("migrate").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const vm = $("migrate-vm").value, to = $("migrate-to").value;
  try {
    const m = await rest("POST", "/v1/migrations", { vm, to_host: to });
    said(true, `${vm} → ${to}: migration ${m.id} ${m.state === "pending_approval"
      ? "waits for approval" : "admitted"}`);
  } catch (e) {
    said(false, `${vm} → ${to}: ${e.message}`);
  }
});
$("migrate-vm").addEventListener("change", renderMigrateForm);

$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("cutover-token", $("token").value);
  $("token").value = "";
  setStatus("connecting", "connecting…");
  follow();
});

follow();
