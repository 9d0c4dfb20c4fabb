// ringkv dashboard: polls this node's JSON endpoints once a second and
// redraws. It only reads; the browser sends the credentials it used for the
// page with every request (same origin).
"use strict";

const POLL_MS = 1000;
const PALETTE = ["#3366cc", "#dc7633", "#2e9e6b", "#9b59b6", "#c0392b", "#17a2b8", "#b7950b", "#6c7a89"];
const colors = new Map();

function colorOf(id) {
  if (!colors.has(id)) colors.set(id, PALETTE[colors.size % PALETTE.length]);
  return colors.get(id);
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : String(k));
  return e;
}

// swatch is a node's colour. It is set through the style property: the
// page's Content-Security-Policy refuses style attributes.
function swatch(id) {
  const s = el("span", { class: "swatch" });
  s.style.background = colorOf(id);
  return s;
}

function svg(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function bytes(n) {
  const u = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + u[i];
}

function duration(s) {
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m";
  if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0");
  return Math.floor(s / 86400) + "d";
}

function ago(unix) {
  if (!unix) return "never";
  return duration(Math.max(0, Math.round(Date.now() / 1000 - unix))) + " ago";
}

function showError(msg) {
  const b = document.getElementById("error");
  b.hidden = !msg;
  b.textContent = msg || "";
}

// A node is down when the failure detector says so, or when the node serving
// this page cannot reach it over the peer port: a dead process refuses the
// connection at once, before gossip has declared it dead.
function isDown(n, st) {
  return !n.up || !(st && st.reachable);
}

function drawRing(ov) {
  const g = document.getElementById("ring");
  g.replaceChildren();
  const nodes = new Map(ov.cluster.nodes.map(n => [n.id, n]));
  const R = 90, W = 16;
  g.append(svg("circle", { r: R, fill: "none", stroke: "#eef0f3", "stroke-width": W }));
  for (const a of ov.ring) {
    let end = a.end <= a.start ? a.end + 1 : a.end;
    if (end - a.start >= 1) end = a.start + 0.99999;
    const p = t => [R * Math.sin(2 * Math.PI * t), -R * Math.cos(2 * Math.PI * t)];
    const [x1, y1] = p(a.start), [x2, y2] = p(end);
    const large = end - a.start > 0.5 ? 1 : 0;
    const n = nodes.get(a.node);
    const down = !n || isDown(n, ov.stats[a.node]);
    const path = svg("path", {
      d: `M ${x1.toFixed(2)} ${y1.toFixed(2)} A ${R} ${R} 0 ${large} 1 ${x2.toFixed(2)} ${y2.toFixed(2)}`,
      fill: "none", stroke: colorOf(a.node), "stroke-width": W,
      "stroke-opacity": down ? 0.25 : 1, "data-node": a.node,
    });
    path.append(svg("title"));
    path.firstChild.textContent = a.node + (down ? " (down)" : "");
    g.append(path);
  }
  const up = ov.cluster.nodes.filter(n => !isDown(n, ov.stats[n.id])).length;
  const t = svg("text", { "text-anchor": "middle", y: 6, "font-size": 18, fill: "#1d2430" });
  t.textContent = `${up}/${ov.cluster.nodes.length} up`;
  g.append(t);
  const t2 = svg("text", { "text-anchor": "middle", y: 24, "font-size": 10, fill: "#6b7380" });
  t2.textContent = `RF ${ov.cluster.replicas}, ${ov.cluster.vnodes} vnodes/node`;
  g.append(t2);

  const legend = document.getElementById("legend");
  legend.replaceChildren(...ov.cluster.nodes.map(n => el("li", {},
    swatch(n.id),
    `${n.id}: ${(n.ownership * 100).toFixed(1)}% primary`)));
}

function drawNodes(ov) {
  const body = document.querySelector("#nodes tbody");
  body.replaceChildren(...ov.cluster.nodes.map(n => {
    const ps = ov.stats[n.id] || { reachable: false, error: "no answer" };
    const s = ps.stats;
    const down = isDown(n, ps);
    let status = down ? "down" : "up";
    let why = "";
    if (!n.up) why = "failure detector: down";
    else if (!ps.reachable) why = "unreachable: " + (ps.error || "");
    else if (ps.error) why = "no figures: " + ps.error;
    const stream = n.stream_ranges_left ? `${n.stream_ranges_left} ranges left` :
      (n.stream_progress ? (n.stream_progress * 100).toFixed(0) + "%" : "—");
    const tr = el("tr", { "data-node": n.id, "data-status": status, title: why },
      el("td", {}, swatch(n.id), n.id + (n.id === ov.cluster.self ? " (this)" : "")),
      el("td", { class: "status" }, status),
      el("td", {}, n.state),
      el("td", {}, n.zone || "—"),
      el("td", { class: "num" }, (n.ownership * 100).toFixed(1) + "%"),
      el("td", { class: "num" }, s ? s.ops_per_sec.toFixed(0) : "—"),
      el("td", { class: "num" }, s && s.ops_per_sec > 0 ? s.p99_ms.toFixed(2) + " ms" : "—"),
      el("td", { class: "num" }, n.hints),
      el("td", {}, s ? ago(s.last_repair_pass) : "—"),
      el("td", {}, stream),
      el("td", { class: "num" }, s ? s.clock_offset_ms + " ms" : "—"),
      el("td", { class: "num" }, s ? bytes(s.disk_bytes) : "—"),
      el("td", { class: "num" }, s ? duration(s.uptime_s) : "—"));
    return tr;
  }));
  const up = ov.cluster.nodes.filter(n => !isDown(n, ov.stats[n.id])).length;
  document.getElementById("summary").textContent =
    `${up} of ${ov.cluster.nodes.length} nodes up · served by ${ov.cluster.self} (${ov.cluster.ready})`;
  const alarms = document.getElementById("alarms");
  alarms.hidden = !(ov.cluster.alarms && ov.cluster.alarms.length);
  alarms.textContent = (ov.cluster.alarms || []).join(" · ");
}

// drawChart plots one field of every node's history on a shared time axis.
function drawChart(id, ov, field) {
  const c = document.getElementById(id);
  const dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth || 640, h = c.clientHeight || 180;
  c.width = w * dpr; c.height = h * dpr;
  const x = c.getContext("2d");
  x.setTransform(dpr, 0, 0, dpr, 0, 0);
  x.clearRect(0, 0, w, h);
  const series = [];
  for (const n of ov.cluster.nodes) {
    const ps = ov.stats[n.id];
    if (ps && ps.stats && ps.stats.history.length) series.push([n.id, ps.stats.history]);
  }
  // The axis spans the history there is, from one minute up to the five
  // minutes a node keeps, so that a young cluster's lines are not a sliver.
  const now = Date.now();
  let oldest = now;
  for (const [, pts] of series) if (pts.length) oldest = Math.min(oldest, pts[0].t);
  const span = Math.min(5 * 60 * 1000, Math.max(60 * 1000, now - oldest));
  let max = 0;
  for (const [, pts] of series) for (const p of pts) max = Math.max(max, p[field]);
  max = max > 0 ? max * 1.1 : 1;
  const L = 48, B = 18, T = 6;
  x.strokeStyle = "#dde1e7"; x.fillStyle = "#6b7380"; x.font = "11px system-ui, sans-serif";
  for (let i = 0; i <= 4; i++) {
    const y = T + (h - T - B) * i / 4;
    x.beginPath(); x.moveTo(L, y); x.lineTo(w, y); x.stroke();
    const v = max * (1 - i / 4);
    x.fillText(v >= 100 ? v.toFixed(0) : v.toFixed(2), 2, y + 4);
  }
  x.fillText("-" + duration(Math.round(span / 1000)), L, h - 4);
  x.fillText("now", w - 24, h - 4);
  for (const [nid, pts] of series) {
    x.strokeStyle = colorOf(nid); x.lineWidth = 1.5;
    x.beginPath();
    let first = true;
    for (const p of pts) {
      if (now - p.t > span) continue;
      const px = L + (w - L) * (1 - (now - p.t) / span);
      const py = T + (h - T - B) * (1 - p[field] / max);
      if (first) { x.moveTo(px, py); first = false; } else x.lineTo(px, py);
    }
    x.stroke();
  }
}

let hotTick = 0;

async function pollHotKeys() {
  const note = document.getElementById("hotnote");
  const body = document.querySelector("#hotkeys tbody");
  let r;
  try {
    r = await fetch("/v1/hotkeys?n=10", { headers: { Accept: "application/json" } });
  } catch (e) {
    note.textContent = "hot keys: " + e.message;
    return;
  }
  if (r.status === 403) {
    body.replaceChildren();
    note.textContent = "Hot keys name real keys: they need the admin right.";
    return;
  }
  if (!r.ok) { note.textContent = "hot keys: HTTP " + r.status; return; }
  const rep = await r.json();
  document.getElementById("hotnode").textContent = `(coordinated by ${rep.node}, over ${rep.window})`;
  body.replaceChildren(...rep.keys.map((k, i) => el("tr", {},
    el("td", { class: "num" }, i + 1),
    el("td", {}, k.key),
    el("td", { class: "num" }, k.rate.toFixed(1)),
    el("td", { class: "num" }, (k.share * 100).toFixed(1) + "%"),
    el("td", {}, k.hot ? "yes" : "no"))));
  note.textContent = rep.keys.length ? "" : "No key is hot on this node.";
}

async function poll() {
  try {
    const r = await fetch("/v1/ui/overview", { headers: { Accept: "application/json" } });
    if (!r.ok) {
      showError(`overview: HTTP ${r.status}`);
    } else {
      const ov = await r.json();
      showError("");
      drawRing(ov);
      drawNodes(ov);
      drawChart("ops", ov, "ops");
      drawChart("p99", ov, "p99_ms");
      document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    }
    if (hotTick++ % 5 === 0) await pollHotKeys();
  } catch (e) {
    showError("cannot reach the node: " + e.message);
  }
  setTimeout(poll, POLL_MS);
}

poll();
