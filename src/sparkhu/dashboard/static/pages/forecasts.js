// The forecasts page: series list, actuals vs blended forecasts (live), latest runs.
// A page of the frame (frame.js); plain JS, no build step; talks to the gateway's GraphQL endpoint (queries over HTTP,
// subscriptions over WebSocket with graphql-transport-ws) and falls back to polling.
export function mount(root, page) {
  // timers through the page, so that leaving the route stops them
  const { setInterval, setTimeout, clearInterval, clearTimeout } = page.timers;
  const POLL_MS = 1000;
  const RUNS_MS = 5000;
  const WS_RETRY_MS = 5000;
  // ids within this page first (it may outlive its route: then it writes to its detached root)
  const $ = (id) => root.querySelector(`#${CSS.escape(id)}`) || document.getElementById(id) || document.createElement("div");

  const state = {
    timezone: "UTC",
    series: [],
    selected: null, // series object
    hours: 6,
    start: null, // Date: left edge of the window
    actual: new Map(), // epoch ms -> value
    forecast: new Map(), // epoch ms -> {value, lower, upper, updates}
    plot: null,
    ws: null,
    wsRetry: null,
    pollTimer: null,
    generation: 0, // bumps on every selection; stale async results are dropped
  };

  // ---------- helpers -------------------------------------------------------------------

  async function gql(query, variables) {
    const res = await fetch("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query, variables }),
    });
    const body = await res.json();
    if (body.errors && body.errors.length) {
      const e = body.errors[0];
      const code = (e.extensions && e.extensions.code) || "ERROR";
      throw new Error(`${code}: ${e.message}`);
    }
    return body.data;
  }

  let fmtFull, fmtTime, fmtHM, fmtDay;
  function makeFormatters() {
    const base = { timeZone: state.timezone, hourCycle: "h23" };
    fmtFull = new Intl.DateTimeFormat("sv-SE", {
      ...base, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
    fmtTime = new Intl.DateTimeFormat("sv-SE", { ...base, hour: "2-digit", minute: "2-digit", second: "2-digit" });
    fmtHM = new Intl.DateTimeFormat("sv-SE", { ...base, hour: "2-digit", minute: "2-digit" });
    fmtDay = new Intl.DateTimeFormat("en-US", { timeZone: state.timezone, month: "short", day: "numeric" });
  }
  const fmtTs = (ms) => (ms == null ? "" : fmtFull.format(new Date(ms)));
  const fmtNum = (v) => (v == null || Number.isNaN(v) ? "–" : Math.abs(v) >= 1000 ? v.toFixed(0) : v.toPrecision(4));

  function fmtDuration(seconds) {
    if (seconds == null) return "–";
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    if (seconds < 3600) return `${(seconds / 60).toFixed(1)} min`;
    if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
    return `${(seconds / 86400).toFixed(1)} d`;
  }

  function fmtPeriod(seconds) {
    if (!seconds) return "–";
    for (const [unit, size] of [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]]) {
      if (seconds >= size && seconds % size === 0) return `${seconds / size} ${unit}`;
    }
    return `${seconds} s`;
  }

  function showError(message) {
    const el = $("error");
    if (!message) { el.hidden = true; el.textContent = ""; return; }
    el.hidden = false;
    el.textContent = message;
  }

  function setLive(mode, text) {
    const el = $("live");
    el.dataset.mode = mode;
    el.textContent = text || mode;
    $("chart").dataset.live = mode;
  }

  // ---------- series list ---------------------------------------------------------------

  async function loadSeries() {
    const data = await gql(`{ series(limit: 1000) { id source measurement field unit periodSeconds firstTs lastTs count } }`);
    state.series = data.series;
    renderSeriesList();
  }

  function renderSeriesList() {
    const list = $("series-list");
    const needle = $("filter").value.trim().toLowerCase();
    const shown = state.series.filter((s) => s.id.toLowerCase().includes(needle));
    $("series-count").textContent = `${shown.length}/${state.series.length}`;
    list.replaceChildren();
    if (!state.series.length) {
      const li = document.createElement("li");
      li.className = "muted empty-list";
      li.textContent = "No series in the catalog yet.";
      list.append(li);
      return;
    }
    for (const s of shown) {
      const li = document.createElement("li");
      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = "series-item" + (state.selected && state.selected.id === s.id ? " active" : "");
      btn.setAttribute("data-testid", "series-item");
      btn.dataset.seriesId = s.id;
      const name = document.createElement("span");
      name.className = "series-name";
      name.textContent = s.field;
      const path = document.createElement("span");
      path.className = "series-path";
      path.textContent = `${s.source} / ${s.measurement}`;
      const count = document.createElement("span");
      count.className = "series-count";
      count.textContent = s.count ? s.count.toLocaleString("en-US") : "";
      btn.append(name, count, path);
      btn.addEventListener("click", () => select(s.id));
      li.append(btn);
      list.append(li);
    }
  }

  // ---------- data for the selected series ---------------------------------------------

  const VIEW_QUERY = `query View($id: String!, $start: DateTime!) {
    seriesById(id: $id) { id source measurement field unit periodSeconds firstTs lastTs count }
    pointColumns(seriesId: $id, start: $start) { ts value }
    predictionColumns(seriesId: $id, start: $start) { ts value lower upper updates }
  }`;

  // columns {ts: [...], value: [...], ...} -> [{ts, value, ...}]
  function rows(columns) {
    const names = Object.keys(columns);
    return columns.ts.map((_, i) => Object.fromEntries(names.map((n) => [n, columns[n][i]])));
  }

  function mergeActual(points) {
    for (const p of points) state.actual.set(Date.parse(p.ts), p.value);
  }

  function mergeForecast(points) {
    for (const p of points) {
      state.forecast.set(Date.parse(p.ts), { value: p.value, lower: p.lower, upper: p.upper, updates: p.updates });
    }
  }

  function trim() {
    const edge = state.start.getTime();
    for (const key of state.actual.keys()) if (key < edge) state.actual.delete(key);
    for (const key of state.forecast.keys()) if (key < edge) state.forecast.delete(key);
  }

  async function loadWindow(generation) {
    const data = await gql(VIEW_QUERY, { id: state.selected.id, start: state.start.toISOString() });
    if (generation !== state.generation) return;
    state.selected = data.seriesById;
    mergeActual(rows(data.pointColumns));
    mergeForecast(rows(data.predictionColumns));
    render();
  }

  async function select(id) {
    const generation = ++state.generation;
    stopLive();
    showError("");
    const series = state.series.find((s) => s.id === id) || { id };
    state.selected = series;
    state.actual = new Map();
    state.forecast = new Map();
    const anchor = series.lastTs ? Date.parse(series.lastTs) : Date.now();
    state.start = new Date(anchor - state.hours * 3600 * 1000);
    const url = new URL(location.href);
    url.searchParams.set("series", id);
    history.replaceState(null, "", url);
    renderSeriesList();
    $("title").textContent = id;
    $("chart").dataset.seriesId = id;
    try {
      await loadWindow(generation);
    } catch (err) {
      showError(String(err.message || err));
    }
    if (generation === state.generation) startLive(generation);
  }

  // ---------- live updates: subscriptions, or polling ----------------------------------

  function stopLive() {
    if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
    clearTimeout(state.wsRetry);
    clearInterval(state.pollTimer);
    state.pollTimer = null;
    setLive("idle");
  }

  function lastActualIso() {
    let last = null;
    for (const key of state.actual.keys()) if (last === null || key > last) last = key;
    return last === null ? null : new Date(last).toISOString();
  }

  function startLive(generation) {
    if (!("WebSocket" in window)) { startPolling(generation); return; }
    const proto = location.protocol === "https:" ? "wss" : "ws";
    let ws;
    try {
      ws = new WebSocket(`${proto}://${location.host}/graphql`, "graphql-transport-ws");
    } catch (err) {
      startPolling(generation);
      return;
    }
    state.ws = ws;
    setLive("connecting", "connecting…");
    ws.onopen = () => ws.send(JSON.stringify({ type: "connection_init", payload: {} }));
    ws.onmessage = (event) => {
      if (generation !== state.generation) return;
      const msg = JSON.parse(event.data);
      if (msg.type === "connection_ack") {
        clearInterval(state.pollTimer);
        state.pollTimer = null;
        const id = state.selected.id;
        ws.send(JSON.stringify({
          id: "forecasts", type: "subscribe",
          payload: {
            query: "subscription($id: String!) { predictionUpdates(seriesId: $id, intervalMs: 1000) { ts value lower upper updates } }",
            variables: { id },
          },
        }));
        ws.send(JSON.stringify({
          id: "actuals", type: "subscribe",
          payload: {
            query: "subscription($id: String!, $since: DateTime) { pointUpdates(seriesId: $id, since: $since, intervalMs: 1000) { ts value } }",
            variables: { id, since: lastActualIso() },
          },
        }));
        setLive("live", "live");
        // A subscription pushes what changes after the server opened it; re-read the window once
        // after that, so that nothing written while the subscribe was on its way is missed.
        setTimeout(() => {
          if (generation !== state.generation) return;
          loadWindow(generation).catch((err) => showError(String(err.message || err)));
        }, 2 * POLL_MS);
      } else if (msg.type === "next") {
        const payload = msg.payload || {};
        if (payload.errors) { showError(payload.errors[0].message); return; }
        if (msg.id === "forecasts") mergeForecast(payload.data.predictionUpdates);
        if (msg.id === "actuals") mergeActual(payload.data.pointUpdates);
        render();
      } else if (msg.type === "error") {
        showError((msg.payload && msg.payload[0] && msg.payload[0].message) || "subscription error");
      } else if (msg.type === "ping") {
        ws.send(JSON.stringify({ type: "pong" }));
      }
    };
    ws.onclose = () => {
      if (generation !== state.generation) return;
      state.ws = null;
      startPolling(generation);
      state.wsRetry = setTimeout(() => {
        if (generation === state.generation) startLive(generation);
      }, WS_RETRY_MS);
    };
  }

  function startPolling(generation) {
    if (state.pollTimer) return;
    setLive("polling", "polling");
    state.pollTimer = setInterval(async () => {
      if (generation !== state.generation) return;
      try {
        await loadWindow(generation);
      } catch (err) {
        showError(String(err.message || err));
      }
    }, POLL_MS);
  }

  // ---------- chart ----------------------------------------------------------------------

  // One value per x of the union; `undefined` (no sample here) is spanned by uPlot, `null`
  // is a gap: fill the x's between two samples more than 3 periods apart with nulls.
  function seriesValues(xs, map, pick, period) {
    const out = new Array(xs.length);
    const own = [];
    xs.forEach((ms, i) => {
      if (map.has(ms)) {
        const v = pick(map.get(ms));
        out[i] = v == null ? null : v;
        own.push(i);
      }
    });
    const maxGap = 3 * (period || medianStep(own.map((i) => xs[i])) || 60000);
    for (let k = 1; k < own.length; k++) {
      const a = own[k - 1], b = own[k];
      if (xs[b] - xs[a] > maxGap) for (let j = a + 1; j < b; j++) out[j] = null;
    }
    return out;
  }

  function medianStep(keys) {
    if (keys.length < 2) return 0;
    const steps = [];
    for (let i = 1; i < keys.length; i++) steps.push(keys[i] - keys[i - 1]);
    steps.sort((a, b) => a - b);
    return steps[steps.length >> 1];
  }

  function chartData() {
    const keys = new Set([...state.actual.keys(), ...state.forecast.keys()]);
    const xs = [...keys].sort((a, b) => a - b);
    const period = state.selected && state.selected.periodSeconds ? state.selected.periodSeconds * 1000 : 0;
    const x = xs.map((ms) => ms / 1000);
    return [
      x,
      seriesValues(xs, state.actual, (v) => v, period),
      seriesValues(xs, state.forecast, (f) => f.value, period),
      seriesValues(xs, state.forecast, (f) => f.upper, period),
      seriesValues(xs, state.forecast, (f) => f.lower, period),
    ];
  }

  function axisTimes(u, splits) {
    let previousDay = null;
    return splits.map((ts) => {
      const d = new Date(ts * 1000);
      const day = fmtDay.format(d);
      const label = day !== previousDay ? `${fmtHM.format(d)}\n${day}` : fmtHM.format(d);
      previousDay = day;
      return label;
    });
  }

  function makePlot(data) {
    const el = $("chart");
    const tz = state.timezone;
    const opts = {
      width: Math.max(320, el.clientWidth - 8),
      height: 380,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), tz),
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: true } },
      legend: { live: true },
      axes: [
        { stroke: "#9aa4b2", grid: { stroke: "#252b36" }, ticks: { stroke: "#252b36" }, values: axisTimes, size: 56 },
        { stroke: "#9aa4b2", grid: { stroke: "#252b36" }, ticks: { stroke: "#252b36" }, size: 64 },
      ],
      series: [
        { label: `Time (${tz})`, value: (u, v) => (v == null ? "–" : fmtTs(v * 1000)) },
        { label: "Actual", stroke: "#4ea1ff", width: 1.5, points: { show: false } },
        { label: "Forecast (blended)", stroke: "#ffb347", width: 2, dash: [6, 4], points: { show: false } },
        { label: "Upper", stroke: "rgba(255,179,71,0.45)", width: 1, points: { show: false } },
        { label: "Lower", stroke: "rgba(255,179,71,0.45)", width: 1, points: { show: false } },
      ],
      bands: [{ series: [3, 4], fill: "rgba(255,179,71,0.12)" }],
    };
    return new uPlot(opts, data, el);
  }

  function render() {
    const el = $("chart");
    trim();
    const data = chartData();
    $("chart-empty").hidden = data[0].length > 0;
    if (!state.plot) {
      if (data[0].length) state.plot = makePlot(data);
    } else {
      state.plot.setData(data);
    }
    el.dataset.actualPoints = String(state.actual.size);
    el.dataset.forecastPoints = String(state.forecast.size);
    el.dataset.updatedAt = new Date().toISOString();
    renderStats();
  }

  function renderStats() {
    const s = state.selected;
    let lastKey = null;
    for (const key of state.actual.keys()) if (lastKey === null || key > lastKey) lastKey = key;
    $("stat-actual").textContent = lastKey === null ? "–" : fmtNum(state.actual.get(lastKey));
    $("stat-actual-ts").textContent = lastKey === null ? "" : fmtTs(lastKey);
    let nextKey = null;
    for (const key of state.forecast.keys()) {
      if ((lastKey === null || key > lastKey) && (nextKey === null || key < nextKey)) nextKey = key;
    }
    const next = nextKey === null ? null : state.forecast.get(nextKey);
    $("stat-forecast").textContent = next ? fmtNum(next.value) : "–";
    $("stat-forecast-ts").textContent = next
      ? `${fmtTs(nextKey)}${next.lower != null ? ` · ${fmtNum(next.lower)} … ${fmtNum(next.upper)}` : ""}`
      : "";
    $("stat-points").textContent = `${state.actual.size.toLocaleString("en-US")} / ${state.forecast.size.toLocaleString("en-US")}`;
    $("stat-points-sub").textContent = "actual / forecast";
    $("stat-period").textContent = s ? fmtPeriod(s.periodSeconds) : "–";
    $("stat-unit").textContent = s && s.unit ? `unit ${s.unit}` : "";
    if (s && s.source) $("subtitle").textContent = `${s.source} · ${s.measurement} · ${s.field} — last ${state.hours} h, times in ${state.timezone}`;
  }

  // ---------- runs -------------------------------------------------------------------------

  async function loadRuns() {
    try {
      const data = await gql(`{ runs(limit: 12) { runId kind name status startedAt seriesId rowsIn rowsOut durationSeconds error } }`);
      renderRuns(data.runs);
      $("runs-updated").textContent = `updated ${fmtTime.format(new Date())}`;
    } catch (err) {
      $("runs-updated").textContent = String(err.message || err);
    }
  }

  function renderRuns(runs) {
    const body = $("runs");
    body.replaceChildren();
    if (!runs.length) {
      const tr = document.createElement("tr");
      tr.innerHTML = '<td colspan="7" class="muted">No runs yet.</td>';
      body.append(tr);
      return;
    }
    for (const run of runs) {
      const tr = document.createElement("tr");
      tr.setAttribute("data-testid", "run-row");
      const cells = [
        fmtTs(Date.parse(run.startedAt)),
        run.kind,
        run.name,
        run.seriesId || "–",
        null,
        `${run.rowsIn ?? "–"} → ${run.rowsOut ?? "–"}`,
        fmtDuration(run.durationSeconds),
      ];
      cells.forEach((text, i) => {
        const td = document.createElement("td");
        if (i === 4) {
          const badge = document.createElement("span");
          badge.className = `badge ${run.status}`;
          badge.textContent = run.status;
          if (run.error) badge.title = run.error;
          td.append(badge);
        } else {
          td.textContent = text;
        }
        if (i >= 5) td.className = "num";
        tr.append(td);
      });
      body.append(tr);
    }
  }

  // ---------- wiring -------------------------------------------------------------------

  async function main() {
    try {
      const config = await (await fetch("/api/config")).json();
      state.timezone = config.timezone || "UTC";
    } catch (err) {
      showError(`cannot read /api/config: ${err}`);
    }
    makeFormatters();
    $("tz").textContent = state.timezone;
    $("filter").addEventListener("input", renderSeriesList);
    for (const btn of document.querySelectorAll("#range button")) {
      btn.addEventListener("click", () => {
        document.querySelectorAll("#range button").forEach((b) => b.classList.toggle("active", b === btn));
        state.hours = Number(btn.dataset.hours);
        if (state.selected) select(state.selected.id);
      });
    }
    new ResizeObserver(() => {
      if (state.plot) state.plot.setSize({ width: Math.max(320, $("chart").clientWidth - 8), height: 380 });
    }).observe($("chart"));
    try {
      await loadSeries();
    } catch (err) {
      showError(String(err.message || err));
    }
    loadRuns();
    setInterval(loadRuns, RUNS_MS);
    const wanted = new URL(location.href).searchParams.get("series");
    if (wanted && state.series.some((s) => s.id === wanted)) select(wanted);
    else if (state.series.length) {
      // Open on something rather than an empty chart: the whole-house meter when there is one.
      const whole = state.series.find((s) => s.field.startsWith("WHE"));
      select((whole || state.series[0]).id);
    }
  }

  main();
  return () => { state.generation += 1; stopLive(); if (state.plot) state.plot.destroy(); };
}
