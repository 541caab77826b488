// Data quality: per series and day, the DAG's reports (regularity, gaps, imputation, outliers,
// anomalies) as charts, and the dataset's correlation matrix as a heatmap with the lags.
const REPORTS = `query Q($id: String!, $days: Int!, $until: Date) { qualityReports(seriesId: $id, days: $days, until: $until) { day task status figures } }`;
const PAIRS = `query C($dataset: String!) { correlations(dataset: $dataset, limit: 2000) { seriesA seriesB lagS pearson spearman n } }`;
const METRICS = [
  ["regularity", "periodic_error", "Regularity: periodic error"],
  ["missing", "completeness", "Completeness"],
  ["missing", "gaps", "Gaps"],
  ["imputation", "filled", "Imputed points"],
  ["outliers", "outliers", "Outliers"],
  ["anomalies", "anomalies", "Anomalies"],
];

export function mount(root, page) {
  const { el, gql, fmtNum } = page;
  const plots = [];
  const pick = el("select", { class: "pick", "data-testid": "quality-series" });
  const days = el("select", { class: "pick", "data-testid": "quality-days" },
    ...[7, 30, 90].map((d) => el("option", { value: String(d), text: `${d} days`, selected: String(d) === (page.params.get("days") || "30") })));
  const charts = el("div", { class: "charts", "data-testid": "quality-charts" });
  const heat = el("div", { class: "table-wrap", "data-testid": "heatmap" });
  const error = el("div", { class: "error", role: "alert", "data-testid": "error", hidden: true });
  root.append(el("main", { class: "main" },
    el("section", { class: "panel" }, el("div", { class: "panel-head" },
      el("div", {}, el("h1", { text: "Data quality" }), el("div", { class: "subtitle", text: "What the daily DAG found, per day, for one series." })),
      el("div", { class: "toolbar" }, pick, days)), charts, error),
    el("section", { class: "panel" }, el("div", { class: "panel-head" },
      el("div", {}, el("h2", { text: "Correlation matrix" }), el("div", { class: "subtitle", "data-testid": "heatmap-title", text: "Pearson at the best lag (cell text: r @ lag)." }))), heat)));

  const showError = (t) => { error.textContent = t || ""; error.hidden = !t; };

  function chartOf(title, metric, xs, ys) {
    const holder = el("div", { class: "mini", "data-testid": "quality-chart", dataset: { metric, points: String(ys.filter((v) => v != null).length) } },
      el("h3", { text: title }));
    charts.append(holder);
    const opts = {
      width: 420, height: 160, legend: { show: false },
      scales: { x: { time: true } },
      axes: [{ stroke: "#9aa4b2", grid: { stroke: "#252b36" } }, { stroke: "#9aa4b2", grid: { stroke: "#252b36" }, size: 56 }],
      series: [{}, { label: title, stroke: "#4ea1ff", fill: "rgba(78,161,255,0.15)", width: 1.5, points: { show: true, size: 5 },
        paths: uPlot.paths.bars ? uPlot.paths.bars({ size: [0.6, 40] }) : undefined }],
    };
    plots.push(new uPlot(opts, [xs, ys], holder));
  }

  async function loadReports() {
    plots.splice(0).forEach((p) => p.destroy());
    charts.replaceChildren();
    const id = pick.value;
    const { qualityReports } = await gql(REPORTS, { id, days: Number(days.value), until: page.params.get("until") || null });
    const dayList = [...new Set(qualityReports.map((r) => r.day))].sort();
    const xs = dayList.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000);
    for (const [task, key, title] of METRICS) {
      const byDay = new Map(qualityReports.filter((r) => r.task === task).map((r) => [r.day, r.figures[key]]));
      chartOf(title, `${task}.${key}`, xs, dayList.map((d) => (typeof byDay.get(d) === "number" ? byDay.get(d) : null)));
    }
    charts.dataset.days = String(dayList.length);
    if (!dayList.length) charts.append(el("div", { class: "muted", text: "No reports yet for this series' dataset (the pipeline writes them under <home>/reports)." }));
  }

  function colour(r) {
    if (r == null) return "transparent";
    const a = Math.min(1, Math.abs(r));
    return r >= 0 ? `rgba(78,161,255,${a})` : `rgba(255,107,107,${a})`;
  }

  async function loadHeatmap() {
    const id = pick.value;
    const [source, measurement] = id.split("/");
    const dataset = `${source}_${measurement}`;
    heat.replaceChildren();
    let pairs = [];
    try {
      pairs = (await gql(PAIRS, { dataset })).correlations;
    } catch (e) {
      heat.append(el("div", { class: "muted", "data-testid": "heatmap-empty", text: String(e.message || e) }));
      return;
    }
    const names = [...new Set(pairs.flatMap((p) => [p.seriesA, p.seriesB]))].sort();
    const at = new Map();
    for (const p of pairs) { at.set(`${p.seriesA}|${p.seriesB}`, p); at.set(`${p.seriesB}|${p.seriesA}`, { ...p, lagS: -p.lagS }); }
    const short = (n) => n.split("/").slice(-1)[0];
    const head = el("tr", {}, el("th"), ...names.map((n) => el("th", { title: n, text: short(n) })));
    const rows = names.map((a) => el("tr", {}, el("th", { title: a, text: short(a) }), ...names.map((b) => {
      if (a === b) return el("td", { style: "background: rgba(78,161,255,1)", text: "1" });
      const p = at.get(`${a}|${b}`);
      if (!p) return el("td", { text: "" });
      return el("td", { style: `background: ${colour(p.pearson)}`, title: `${a} ~ ${b}: pearson ${fmtNum(p.pearson, 3)}, spearman ${fmtNum(p.spearman, 3)}, lag ${p.lagS}s, n ${p.n}`,
        "data-testid": "heatmap-cell", dataset: { a, b, pearson: String(p.pearson), lag: String(p.lagS) }, text: `${fmtNum(p.pearson, 2)} @ ${p.lagS}s` });
    })));
    heat.append(el("table", { class: "heatmap" }, el("thead", {}, head), el("tbody", {}, ...rows)));
    heat.dataset.pairs = String(pairs.length);
  }

  async function load() {
    try {
      await Promise.all([loadReports(), loadHeatmap()]);
      showError("");
    } catch (e) { showError(String(e.message || e)); }
    const params = new URLSearchParams({ series: pick.value });
    if (page.params.get("until")) params.set("until", page.params.get("until"));
    if (days.value !== "30") params.set("days", days.value);
    page.setParams(params);
    document.body.dataset.ready = "true";
  }

  async function start() {
    try {
      const { series } = await gql("{ series(limit: 10000) { id } }");
      pick.replaceChildren(...series.map((s) => el("option", { value: s.id, text: s.id })));
      const wanted = page.params.get("series");
      if (wanted && series.some((s) => s.id === wanted)) pick.value = wanted;
    } catch (e) { showError(String(e.message || e)); return; }
    pick.addEventListener("change", load);
    days.addEventListener("change", load);
    if (pick.value) await load();
    else document.body.dataset.ready = "true";
  }

  start();
  return () => plots.forEach((p) => p.destroy());
}
