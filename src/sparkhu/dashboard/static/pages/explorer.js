// The series explorer: many series overlaid or stacked, fetched as time buckets sized to the
// zoom level (drag to zoom, buttons to pan), with anomalies, gaps (imputed points), outliers,
// annotations (pipeline days, model versions) and forecast intervals marked.
const LADDER = ["1s", "5s", "15s", "30s", "1m", "2m", "5m", "10m", "15m", "30m", "1h", "2h", "3h", "6h", "12h", "1d", "2d", "7d"];
const SECONDS = { s: 1, m: 60, h: 3600, d: 86400 };
const TARGET_BUCKETS = 600;
const MAX_SERIES = 12;

const secondsOf = (b) => Number(b.slice(0, -1)) * SECONDS[b.slice(-1)];

/** The finest bucket that keeps a window of `span` seconds within TARGET_BUCKETS. */
export function bucketFor(span, periodS = 1) {
  return LADDER.find((b) => secondsOf(b) >= periodS && span / secondsOf(b) <= TARGET_BUCKETS) || LADDER[LADDER.length - 1];
}

const WINDOW = `query Window($id: String!, $bucket: String!, $start: DateTime, $end: DateTime) {
  pointBuckets(seriesId: $id, bucket: $bucket, start: $start, end: $end) { buckets ts min max mean last count }
  anomalies(seriesId: $id, start: $start, end: $end, limit: 2000) { ts score }
  gaps(seriesId: $id, start: $start, end: $end, limit: 2000) { ts slots }
  outliers(seriesId: $id, start: $start, end: $end, limit: 2000) { ts value }
}`;
const MARKS = `query Marks($id: String!, $start: DateTime, $end: DateTime, $bucket: String!) {
  annotations(seriesId: $id, start: $start, end: $end) { ts kind label status }
  forecastBuckets(seriesId: $id, bucket: $bucket, start: $start, end: $end) { ts mean min max }
}`;

export function mount(root, page) {
  const { el, gql, fmtTime, fmtNum } = page;
  const state = {
    series: [], chosen: [], mode: page.params.get("mode") || "overlay",
    start: null, end: null, // seconds
    full: null, data: new Map(), marks: null, plots: [], zooms: 0, generation: 0,
  };
  const chosenParam = page.params.getAll("series");

  const list = el("div", { class: "pick-list", "data-testid": "explorer-series" });
  const filter = el("input", { class: "filter", type: "search", placeholder: "Filter series…", "data-testid": "explorer-filter" });
  const chart = el("div", { class: "explorer-chart", "data-testid": "explorer-chart", dataset: { buckets: "0", series: "0" } });
  const status = el("div", { class: "muted small", "data-testid": "explorer-status" });
  const error = el("div", { class: "error", role: "alert", "data-testid": "error", hidden: true });
  const modeBtn = (m, label) => el("button", { type: "button", "data-testid": `mode-${m}`, class: state.mode === m ? "active" : "",
    onclick: () => { state.mode = m; for (const b of modes.children) b.classList.toggle("active", b.dataset.testid === `mode-${m}`); draw(); } }, label);
  const modes = el("div", { class: "range" }, modeBtn("overlay", "Overlay"), modeBtn("stacked", "Stacked"));
  const span = (days) => el("button", { type: "button", "data-testid": `span-${days}`, onclick: () => showLast(days * 86400) }, days >= 1 ? `${days} d` : `${days * 24} h`);
  const pan = (dir, label) => el("button", { type: "button", "data-testid": `pan-${dir}`, onclick: () => shift(dir) }, label);
  root.append(el("div", { class: "layout" },
    el("aside", { class: "sidebar" }, el("div", { class: "sidebar-head" }, el("h2", { text: "Series" }), el("span", { class: "count muted small", text: `up to ${MAX_SERIES}` })), filter, list),
    el("main", { class: "main" }, el("section", { class: "panel" },
      el("div", { class: "panel-head" },
        el("div", {}, el("h1", { text: "Series explorer" }),
          el("div", { class: "subtitle", text: "Drag on the chart to zoom; buckets follow the zoom. Red: anomalies, orange: imputed gaps, purple: outliers; lines on the axis: pipeline days and model versions." })),
        el("div", { class: "toolbar" }, modes, el("div", { class: "range" }, span(0.25), span(1), span(7), span(30)),
          el("div", { class: "range" }, pan(-1, "◀"), el("button", { type: "button", "data-testid": "zoom-reset", onclick: () => showAll() }, "All"), pan(1, "▶")))),
      status, chart, error))));

  function showError(text) { error.textContent = text || ""; error.hidden = !text; }

  function renderList() {
    const q = filter.value.trim().toLowerCase();
    list.replaceChildren(...state.series.filter((s) => !q || s.id.toLowerCase().includes(q)).slice(0, 500).map((s) => {
      const box = el("input", { type: "checkbox", checked: state.chosen.includes(s.id) });
      box.addEventListener("change", () => toggle(s.id, box.checked));
      return el("label", { class: "pick", "data-testid": "explorer-item", dataset: { seriesId: s.id } }, box, el("span", { text: s.id }));
    }));
  }

  function toggle(id, on) {
    state.chosen = on ? [...new Set([...state.chosen, id])].slice(0, MAX_SERIES) : state.chosen.filter((x) => x !== id);
    const params = new URLSearchParams();
    state.chosen.forEach((x) => params.append("series", x));
    if (state.mode !== "overlay") params.set("mode", state.mode);
    page.setParams(params);
    renderList();
    fullRange();
    load();
  }

  function fullRange() {
    const picked = state.series.filter((s) => state.chosen.includes(s.id) && s.firstTs);
    if (!picked.length) { state.full = null; return; }
    const first = Math.min(...picked.map((s) => Date.parse(s.firstTs) / 1000));
    const last = Math.max(...picked.map((s) => Date.parse(s.lastTs) / 1000)) + 1;
    state.full = [first, last];
    if (state.start == null || state.end == null) [state.start, state.end] = state.full;
  }

  function showAll() { if (state.full) { [state.start, state.end] = state.full; load(); } }
  function showLast(seconds) { if (state.full) { state.end = state.full[1]; state.start = state.end - seconds; load(); } }
  function shift(dir) { const w = state.end - state.start; state.start += dir * w / 2; state.end += dir * w / 2; load(); }

  const iso = (s) => new Date(Math.round(s * 1000)).toISOString();

  async function load() {
    const mine = ++state.generation;
    if (!state.chosen.length || state.start == null) { state.data = new Map(); draw(); return; }
    const period = Math.min(...state.chosen.map((id) => (state.series.find((s) => s.id === id) || {}).periodSeconds || 1));
    const bucket = bucketFor(state.end - state.start, period);
    const vars = { bucket, start: iso(state.start), end: iso(state.end) };
    try {
      const answers = await Promise.all(state.chosen.map((id) => gql(WINDOW, { ...vars, id })));
      const marks = await gql(MARKS, { ...vars, id: state.chosen[0] });
      if (mine !== state.generation) return;
      state.data = new Map(state.chosen.map((id, i) => [id, answers[i]]));
      state.marks = marks;
      state.bucket = bucket;
      showError("");
      draw();
    } catch (e) {
      if (mine === state.generation) showError(String(e.message || e));
    }
  }

  function onZoom(u) {
    const { min, max } = u.scales.x;
    if (state.drawing || min == null || max == null) return;
    if (Math.abs(min - state.start) < 1 && Math.abs(max - state.end) < 1) return;
    state.start = min; state.end = max; state.zooms += 1;
    load();
  }

  /** Bucket means of one series aligned on the shared x (seconds), with a lookup for marks. */
  function aligned(xs, answer) {
    const b = answer.pointBuckets;
    const at = new Map(b.ts.map((t, i) => [Date.parse(t) / 1000, i]));
    return { mean: xs.map((x) => (at.has(x) ? b.mean[at.get(x)] : null)),
      min: xs.map((x) => (at.has(x) ? b.min[at.get(x)] : null)), max: xs.map((x) => (at.has(x) ? b.max[at.get(x)] : null)) };
  }

  function markerPlugin(ids, unit) {
    // draws anomalies, gaps, outliers (per series) and annotations (first series) over the chart
    return { hooks: { draw: [(u) => {
      const ctx = u.ctx;
      const dot = (x, y, color, r) => { ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.fillStyle = color; ctx.fill(); };
      ctx.save();
      ids.forEach((id) => {
        const answer = state.data.get(id);
        if (!answer) return;
        const b = answer.pointBuckets;
        const valueAt = (t) => {
          const s = Date.parse(t) / 1000;
          let lo = 0, hi = b.ts.length - 1;
          while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (Date.parse(b.ts[mid]) / 1000 <= s) lo = mid; else hi = mid - 1; }
          return b.mean[lo];
        };
        const scale = unit || "y";
        for (const a of answer.anomalies) { const v = valueAt(a.ts); if (v != null) dot(u.valToPos(Date.parse(a.ts) / 1000, "x", true), u.valToPos(v, scale, true), "#ff6b6b", 4); }
        for (const o of answer.outliers) { if (o.value != null) dot(u.valToPos(Date.parse(o.ts) / 1000, "x", true), u.valToPos(o.value, scale, true), "#c792ea", 3.5); }
        const bottom = u.bbox.top + u.bbox.height;
        for (const g of answer.gaps) {
          const x = u.valToPos(Date.parse(g.ts) / 1000, "x", true);
          ctx.fillStyle = "#ffb347"; ctx.fillRect(x - 1.5, bottom - 8, 3, 8);
        }
      });
      if (ids.includes(state.chosen[0]) && state.marks) {
        ctx.font = `${11 * devicePixelRatio}px system-ui`;
        for (const a of state.marks.annotations) {
          const x = u.valToPos(Date.parse(a.ts) / 1000, "x", true);
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
          ctx.strokeStyle = a.kind === "model" ? "#c792ea" : a.status === "success" ? "rgba(62,207,142,0.7)" : "rgba(255,107,107,0.8)";
          ctx.setLineDash([4, 4]); ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
          ctx.setLineDash([]);
        }
      }
      ctx.restore();
    }] } };
  }

  function plotFor(ids, height) {
    const xsSet = new Set();
    ids.forEach((id) => state.data.get(id).pointBuckets.ts.forEach((t) => xsSet.add(Date.parse(t) / 1000)));
    let forecast = null;
    if (ids.includes(state.chosen[0]) && state.marks && state.marks.forecastBuckets.ts.length) {
      forecast = state.marks.forecastBuckets;
      forecast.ts.forEach((t) => xsSet.add(Date.parse(t) / 1000));
    }
    const xs = [...xsSet].sort((a, b) => a - b);
    const data = [xs];
    const series = [{}];
    ids.forEach((id) => {
      const color = page.colors[state.chosen.indexOf(id) % page.colors.length];
      const a = aligned(xs, state.data.get(id));
      data.push(a.mean);
      series.push({ label: id, stroke: color, width: 1.5, spanGaps: false, value: (u, v) => fmtNum(v) });
      if (ids.length === 1) {
        data.push(a.min, a.max);
        series.push({ label: "min", stroke: color + "55", width: 1, value: (u, v) => fmtNum(v) },
                    { label: "max", stroke: color + "55", width: 1, value: (u, v) => fmtNum(v) });
      }
    });
    if (forecast) {
      const at = new Map(forecast.ts.map((t, i) => [Date.parse(t) / 1000, i]));
      const pick = (col) => xs.map((x) => (at.has(x) ? forecast[col][at.get(x)] : null));
      data.push(pick("mean"), pick("min"), pick("max"));
      series.push({ label: "forecast", stroke: "#ffb347", width: 1.5, dash: [6, 3], value: (u, v) => fmtNum(v) },
        { label: "interval low", stroke: "#ffb34766", width: 1, dash: [2, 3], value: (u, v) => fmtNum(v) },
        { label: "interval high", stroke: "#ffb34766", width: 1, dash: [2, 3], value: (u, v) => fmtNum(v) });
    }
    const holder = el("div", { class: "explorer-plot", "data-testid": "explorer-plot", dataset: { series: ids.join(",") } });
    chart.append(holder);
    const opts = {
      width: Math.max(320, chart.clientWidth - 8), height, cursor: { sync: { key: "explorer" }, drag: { x: true, y: false } },
      scales: { x: { time: true, min: state.start, max: state.end } },
      axes: [{ stroke: "#9aa4b2", grid: { stroke: "#252b36" }, space: 110, values: (u, splits) => splits.map((s) => fmtTime(s * 1000).slice(5)) },
             { stroke: "#9aa4b2", grid: { stroke: "#252b36" }, size: 64 }],
      series, plugins: [markerPlugin(ids)], hooks: { setScale: [(u, key) => { if (key === "x") onZoom(u); }] },
    };
    return new uPlot(opts, data, holder);
  }

  function draw() {
    state.plots.forEach((p) => p.destroy());
    state.plots = [];
    chart.replaceChildren();
    const ids = state.chosen.filter((id) => state.data.has(id));
    let buckets = 0, anomalies = 0, gaps = 0, outliers = 0;
    for (const id of ids) {
      const a = state.data.get(id);
      buckets += a.pointBuckets.buckets; anomalies += a.anomalies.length; gaps += a.gaps.length; outliers += a.outliers.length;
    }
    Object.assign(chart.dataset, {
      series: String(ids.length), buckets: String(buckets), bucket: state.bucket || "", anomalies: String(anomalies), gaps: String(gaps),
      outliers: String(outliers), annotations: String(state.marks ? state.marks.annotations.length : 0),
      forecastBuckets: String(state.marks ? state.marks.forecastBuckets.ts.length : 0), mode: state.mode, zooms: String(state.zooms),
      start: state.start ? iso(state.start) : "", end: state.end ? iso(state.end) : "",
    });
    if (!ids.length) {
      chart.append(el("div", { class: "empty", text: "Tick series on the left to chart them." }));
      status.textContent = "";
      return;
    }
    state.drawing = true;
    try {
      if (state.mode === "stacked") ids.forEach((id) => state.plots.push(plotFor([id], 180)));
      else state.plots.push(plotFor(ids, 420));
    } finally { state.drawing = false; }
    status.textContent = `${ids.length} series · ${buckets.toLocaleString("en-US")} buckets of ${state.bucket} · ` +
      `${fmtTime(state.start * 1000)} → ${fmtTime(state.end * 1000)} · ${anomalies} anomalies · ${gaps} gaps · ${outliers} outliers · ` +
      `${state.marks ? state.marks.annotations.length : 0} annotations`;
    chart.dataset.drawn = String(performance.now());
  }

  async function start() {
    page.colors = (await import("../frame.js")).COLORS;
    filter.addEventListener("input", renderList);
    try {
      state.series = (await gql("{ series(limit: 10000) { id unit periodSeconds firstTs lastTs count } }")).series;
    } catch (e) { showError(String(e.message || e)); return; }
    state.chosen = chosenParam.filter((id) => state.series.some((s) => s.id === id)).slice(0, MAX_SERIES);
    if (!state.chosen.length && state.series.length) state.chosen = [state.series[0].id];
    renderList();
    fullRange();
    await load();
    document.body.dataset.ready = "true";
  }

  const resize = new ResizeObserver(() => state.plots.forEach((p) => p.setSize({ width: Math.max(320, chart.clientWidth - 8), height: p.height })));
  resize.observe(chart);
  start();
  return () => { state.generation += 1; resize.disconnect(); state.plots.forEach((p) => p.destroy()); };
}
