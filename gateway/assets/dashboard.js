// hotline-gateway dashboard: live tiles and charts over SSE, replay progress. No libraries.
"use strict";

const COLOURS = ["#0b4f8a", "#c62828", "#1a7f37", "#b26a00", "#6a1b9a", "#00838f", "#5d4037", "#ad1457"];
const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// One line per partner; null values break the line.
function drawChart(svg, minutes, lines, unit) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const W = 600, H = 200, L = 44, R = 8, T = 8, B = 22;
  const values = lines.flatMap(l => l.values.filter(v => v !== null));
  const max = niceMax(Math.max(0, ...values));
  const x = i => L + (W - L - R) * (minutes.length > 1 ? i / (minutes.length - 1) : 0);
  const y = v => T + (H - T - B) * (1 - v / max);
  for (const f of [0, 0.5, 1]) {
    svg.appendChild(el("line", { x1: L, x2: W - R, y1: y(max * f), y2: y(max * f), stroke: "#dde3ea" }));
    svg.appendChild(el("text", { x: L - 4, y: y(max * f) + 3, "text-anchor": "end" }, `${+(max * f).toFixed(1)}${unit}`));
  }
  // Times in Beijing time, like every other time on the dashboard.
  minutes.forEach((m, i) => {
    const last = i === minutes.length - 1;
    if (i % 15 === 0 || last) {
      const d = new Date(m + 8 * 3600 * 1000);
      const hh = String(d.getUTCHours()).padStart(2, "0"), mm = String(d.getUTCMinutes()).padStart(2, "0");
      const anchor = i === 0 ? "start" : last ? "end" : "middle";
      svg.appendChild(el("text", { x: x(i), y: H - 6, "text-anchor": anchor }, `${hh}:${mm}`));
    }
  });
  lines.forEach((l, n) => {
    let d = "", pen = false;
    l.values.forEach((v, i) => {
      if (v === null) { pen = false; return; }
      d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    const colour = COLOURS[n % COLOURS.length];
    if (d) svg.appendChild(el("path", { d, fill: "none", stroke: colour, "stroke-width": 1.6, "data-partner": l.id }));
    // A minute with figures between two without shows as a dot.
    l.values.forEach((v, i) => {
      const alone = v !== null && (l.values[i - 1] ?? null) === null && (l.values[i + 1] ?? null) === null;
      if (alone) svg.appendChild(el("circle", { cx: x(i), cy: y(v), r: 2.5, fill: colour }));
    });
  });
}

function drawCharts(snap) {
  const t = document.getElementById("chart-throughput");
  const l = document.getElementById("chart-latency");
  if (!t || !l) return;
  drawChart(t, snap.minutes, snap.series.map(s => ({ id: s.id, values: s.delivered })), "");
  drawChart(l, snap.minutes, snap.series.map(s => ({ id: s.id, values: s.p95_ms })), "");
  const legend = document.getElementById("legend");
  legend.textContent = "";
  snap.series.forEach((s, n) => {
    const span = document.createElement("span");
    span.style.setProperty("--c", COLOURS[n % COLOURS.length]);
    span.textContent = s.id;
    legend.appendChild(span);
  });
}

function applyTiles(snap) {
  for (const tile of snap.tiles) {
    const box = document.querySelector(`.tile[data-partner="${CSS.escape(tile.id)}"]`);
    if (!box) continue;
    box.className = `tile health-${tile.health}`;
    for (const f of box.querySelectorAll("[data-f]")) {
      const v = tile[f.dataset.f];
      if (v !== undefined) f.textContent = String(v);
    }
  }
  const updated = document.getElementById("updated");
  if (updated) updated.textContent = snap.at;
  const alerts = document.getElementById("alerts-open");
  if (alerts) alerts.textContent = String(snap.alerts_open);
}

function overview() {
  const state = document.getElementById("live-state");
  const source = new EventSource("/ui/live");
  source.addEventListener("overview", ev => {
    const snap = JSON.parse(ev.data);
    applyTiles(snap);
    drawCharts(snap);
    if (state) { state.textContent = "实时 live ●"; state.className = "ok"; }
  });
  source.addEventListener("problem", ev => {
    if (state) { state.textContent = `数据暂不可用 figures unavailable: ${ev.data}`; state.className = "bad"; }
  });
  source.onerror = () => {
    if (state) { state.textContent = "连接中断，重连中 reconnecting…"; state.className = "bad"; }
  };
}

function job() {
  const box = document.querySelector("[data-job]");
  if (!box) return;
  const id = box.dataset.job;
  const bar = document.getElementById("job-progress");
  const tick = async () => {
    const resp = await fetch(`/ui/jobs/${id}/progress`, { credentials: "same-origin" });
    if (!resp.ok) return;
    const p = await resp.json();
    bar.max = Math.max(p.total, 1);
    bar.value = p.done;
    for (const k of ["done", "requeued", "skipped", "failed"]) {
      document.getElementById(`job-${k}`).textContent = String(p[k]);
    }
    document.getElementById("job-state").textContent = p.finished ? "已完成 finished" : "进行中 running…";
    if (!p.finished) setTimeout(tick, 400);
  };
  tick();
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "overview") overview();
  job();
});
