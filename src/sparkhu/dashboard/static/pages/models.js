// Models: the registry browsable here (no `mlflow ui` needed): per series the champion, the
// challengers and the history of versions with their back-test scores, and the forecasts of
// each model overlaid on the actuals.
const VERSIONS = `query V($id: String) { modelVersions(seriesId: $id) { name version seriesId aliases metrics createdAt model } }`;
const OVERLAY = `query O($id: String!, $limit: Int!) {
  rawForecasts(seriesId: $id, limit: $limit) { origin target value lower upper model }
  series: seriesById(id: $id) { lastTs periodSeconds }
}`;
const ACTUALS = `query A($id: String!, $start: DateTime!, $limit: Int!) { pointColumns(seriesId: $id, start: $start, limit: $limit) { ts value } }`;

export function mount(root, page) {
  const { el, gql, fmtNum, fmtTime } = page;
  let plot = null;
  const pick = el("select", { class: "pick", "data-testid": "models-series" });
  const metricPick = el("select", { class: "pick", "data-testid": "models-metric" });
  const table = el("tbody", { "data-testid": "model-rows" });
  const bars = el("div", { "data-testid": "model-bars" });
  const chart = el("div", { class: "chart", "data-testid": "model-forecasts", dataset: { models: "0" } });
  const error = el("div", { class: "error", role: "alert", "data-testid": "error", hidden: true });
  root.append(el("main", { class: "main" },
    el("section", { class: "panel" }, el("div", { class: "panel-head" },
      el("div", {}, el("h1", { text: "Models" }), el("div", { class: "subtitle", text: "The registry's versions per series: aliases (champion, challenger, previous), back-test scores." })),
      el("div", { class: "toolbar" }, pick)),
      el("div", { class: "table-wrap" }, el("table", { class: "runs" },
        el("thead", {}, el("tr", {}, ...["Model", "Version", "Aliases", "Kind", "Back-test scores", "Created"].map((h) => el("th", { text: h })))), table)), error),
    el("section", { class: "panel" }, el("div", { class: "panel-head" }, el("h2", { text: "Back-test scores by version" }), metricPick), bars),
    el("section", { class: "panel" }, el("div", { class: "panel-head" }, el("h2", { text: "Forecasts by model, over the actuals" }),
      el("span", { class: "muted small", text: "champion and challenger forecasts overlaid (latest origins)" })), chart)));
  const showError = (t) => { error.textContent = t || ""; error.hidden = !t; };
  let versions = [];

  function renderTable() {
    table.replaceChildren(...(versions.length ? versions.map((v) => el("tr", { "data-testid": "model-row", dataset: { aliases: v.aliases.join(","), version: v.version } },
      el("td", { text: v.name }), el("td", { text: v.version }),
      el("td", {}, ...v.aliases.map((a) => el("span", { class: `alias ${a}`, text: a }))),
      el("td", { text: v.model || "" }),
      el("td", { text: Object.entries(v.metrics || {}).filter(([, x]) => typeof x === "number").slice(0, 4).map(([k, x]) => `${k} ${fmtNum(x, 3)}`).join(" · ") }),
      el("td", { text: v.createdAt ? fmtTime(Date.parse(v.createdAt)) : "" }))) : [el("tr", {}, el("td", { colspan: "6", class: "muted", text: "No model version for this series yet (sparkhu train)." }))]));
    const metrics = [...new Set(versions.flatMap((v) => Object.keys(v.metrics || {}).filter((k) => typeof v.metrics[k] === "number")))].sort();
    const chosen = metrics.includes(metricPick.value) ? metricPick.value : (metrics.find((m) => m.toLowerCase() === "mase") || metrics[0]);
    metricPick.replaceChildren(...metrics.map((m) => el("option", { value: m, text: m, selected: m === chosen })));
    renderBars();
  }

  function renderBars() {
    const m = metricPick.value;
    const rows = versions.filter((v) => typeof (v.metrics || {})[m] === "number");
    const top = Math.max(...rows.map((v) => Math.abs(v.metrics[m])), 1e-12);
    bars.replaceChildren(...rows.map((v) => el("div", { class: "bar-row", "data-testid": "model-bar" },
      el("span", { text: `v${v.version}${v.aliases.length ? ` (${v.aliases.join(", ")})` : ""}` }),
      el("div", {}, el("div", { class: `bar${v.aliases.includes("champion") ? " champion" : ""}`, style: `width: ${(100 * Math.abs(v.metrics[m])) / top}%` })),
      el("span", { class: "value", text: fmtNum(v.metrics[m], 4) }))));
  }

  async function renderOverlay(id) {
    if (plot) { plot.destroy(); plot = null; }
    chart.replaceChildren();
    const { rawForecasts, series } = await gql(OVERLAY, { id, limit: 2000 });
    const byModel = new Map();
    for (const f of rawForecasts) {
      // the newest origin of each model
      const cur = byModel.get(f.model);
      if (!cur || f.origin > cur.origin) byModel.set(f.model, { origin: f.origin, points: [] });
    }
    for (const f of rawForecasts) if (byModel.get(f.model).origin === f.origin) byModel.get(f.model).points.push(f);
    const models = [...byModel.keys()].sort();
    chart.dataset.models = String(models.length);
    if (!models.length) { chart.append(el("div", { class: "empty", text: "No raw forecasts stored for this series." })); return; }
    const first = Math.min(...models.map((m) => Date.parse(byModel.get(m).origin)));
    const span = (series.periodSeconds || 60) * 120 * 1000;
    const { pointColumns } = await gql(ACTUALS, { id, start: new Date(first - span).toISOString(), limit: 2000 });
    const xsSet = new Set(pointColumns.ts.map((t) => Date.parse(t) / 1000));
    models.forEach((m) => byModel.get(m).points.forEach((p) => xsSet.add(Date.parse(p.target) / 1000)));
    const xs = [...xsSet].sort((a, b) => a - b);
    const actual = new Map(pointColumns.ts.map((t, i) => [Date.parse(t) / 1000, pointColumns.value[i]]));
    const data = [xs, xs.map((x) => (actual.has(x) ? actual.get(x) : null))];
    const series_ = [{}, { label: "actual", stroke: "#e6eaf0", width: 1.2 }];
    const colors = ["#3ecf8e", "#ffb347", "#c792ea", "#4ea1ff", "#ff6b6b"];
    models.forEach((m, i) => {
      const at = new Map(byModel.get(m).points.map((p) => [Date.parse(p.target) / 1000, p.value]));
      data.push(xs.map((x) => (at.has(x) ? at.get(x) : null)));
      series_.push({ label: m, stroke: colors[i % colors.length], width: 1.6, dash: [6, 3], spanGaps: true });
    });
    plot = new uPlot({ width: Math.max(320, chart.clientWidth - 8), height: 320, scales: { x: { time: true } }, series: series_,
      axes: [{ stroke: "#9aa4b2", grid: { stroke: "#252b36" }, values: (u, s) => s.map((v) => fmtTime(v * 1000).slice(5)) }, { stroke: "#9aa4b2", grid: { stroke: "#252b36" }, size: 64 }] },
      data, chart);
  }

  async function load() {
    const id = pick.value;
    page.setParams(new URLSearchParams({ series: id }));
    try {
      versions = (await gql(VERSIONS, { id })).modelVersions;
      renderTable();
      await renderOverlay(id);
      showError("");
    } catch (e) { showError(String(e.message || e)); }
    document.body.dataset.ready = "true";
  }

  async function start() {
    metricPick.addEventListener("change", renderBars);
    try {
      const { series } = await gql("{ series(limit: 10000) { id } }");
      pick.replaceChildren(...series.map((s) => el("option", { value: s.id, text: s.id })));
      const wanted = page.params.get("series");
      if (wanted && series.some((s) => s.id === wanted)) pick.value = wanted;
    } catch (e) { showError(String(e.message || e)); return; }
    pick.addEventListener("change", load);
    if (pick.value) await load();
    else document.body.dataset.ready = "true";
  }

  start();
  return () => { if (plot) plot.destroy(); };
}
