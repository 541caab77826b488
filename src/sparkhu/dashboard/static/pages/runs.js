// The runs grid in Airflow's manner: the pipeline's tasks × days, coloured by status, per series
// on demand; a cell shows its run, links to its report and re-runs the task-day (needs the token).
const GRID = `query Grid($days: Int!, $until: Date, $dataset: String, $seriesId: String, $status: String, $task: String) {
  runGrid(days: $days, until: $until, dataset: $dataset, seriesId: $seriesId, status: $status, task: $task) {
    days tasks
    cells { task day status runId rowsIn rowsOut seconds error report }
  }
}`;
const COUNTS = `query Counts($day: Date!, $task: String!) {
  runGrid(days: 1, until: $day, task: $task, seriesCounts: true) { cells { task seriesSuccess seriesFailed seriesSkipped } }
}`;
const RERUN = `mutation Rerun($name: String!, $day: Date!) { rerunTaskDay(name: $name, day: $day) { name day status } }`;
const STATUSES = ["", "success", "failed", "skipped", "running"];

export function mount(root, page) {
  const { el, gql } = page;
  const p = page.params;
  const input = (name, placeholder, value) =>
    el("input", { class: "filter", type: "search", placeholder, value: value || "", "data-testid": `runs-${name}` });
  const dataset = input("dataset", "dataset (all)", p.get("dataset"));
  const series = input("series", "one series (optional)", p.get("series"));
  const task = input("task", "task contains…", p.get("task"));
  const status = el("select", { class: "pick", "data-testid": "runs-status" },
    ...STATUSES.map((s) => el("option", { value: s, text: s || "any status", selected: s === (p.get("status") || "") })));
  const days = el("select", { class: "pick", "data-testid": "runs-days" },
    ...[7, 14, 30, 60, 90].map((d) => el("option", { value: String(d), text: `${d} days`, selected: String(d) === (p.get("days") || "30") })));
  const until = el("input", { class: "pick", type: "date", value: p.get("until") || "", title: "last day (default: today)", "data-testid": "runs-until" });
  const grid = el("div", { class: "grid-wrap", "data-testid": "runs-grid", dataset: { cells: "0", tasks: "0" } });
  const detail = el("div", { class: "cell-detail muted", "data-testid": "cell-detail", text: "Click a cell for its run." });
  const error = el("div", { class: "error", role: "alert", "data-testid": "error", hidden: true });
  const legend = el("div", { class: "legend small" }, ...["success", "failed", "skipped", "running"].map((s) =>
    el("span", {}, el("span", { class: `sq ${s}` }), ` ${s}`)));
  root.append(el("main", { class: "main" }, el("section", { class: "panel" },
    el("div", { class: "panel-head" }, el("div", {}, el("h1", { text: "Pipeline runs" }),
      el("div", { class: "subtitle", text: "Tasks × days; a cell is the newest run of the task-day; click it for its series, report and re-run." })), legend),
    el("form", { class: "toolbar", "data-testid": "runs-filters", onsubmit: (e) => { e.preventDefault(); load(); } },
      dataset, series, task, status, days, until, el("button", { type: "submit", "data-testid": "runs-apply" }, "Apply")),
    grid, detail, error)));

  function showError(text) { error.textContent = text || ""; error.hidden = !text; }

  function vars() {
    return { days: Number(days.value), until: until.value || null, dataset: dataset.value.trim() || null, seriesId: series.value.trim() || null,
      status: status.value || null, task: task.value.trim() || null };
  }

  async function load() {
    const v = vars();
    const params = new URLSearchParams();
    for (const [k, val] of Object.entries({ dataset: v.dataset, series: v.seriesId, task: v.task, status: v.status, days: v.days === 30 ? null : v.days, until: v.until }))
      if (val != null) params.set(k, String(val));
    page.setParams(params);
    const started = performance.now();
    try {
      const { runGrid } = await gql(GRID, v);
      render(runGrid);
      grid.dataset.ms = String(Math.round(performance.now() - started));
      showError("");
    } catch (e) {
      showError(String(e.message || e));
    }
    document.body.dataset.ready = "true";
  }

  function render(g) {
    const byKey = new Map(g.cells.map((c) => [`${c.task}|${c.day}`, c]));
    const head = el("tr", {}, el("th", { text: "task" }), ...g.days.map((d) => el("th", { class: "day", title: d, text: d.slice(5) })));
    const rows = g.tasks.map((t) => el("tr", {}, el("th", { class: "task", text: t }), ...g.days.map((d) => {
      const c = byKey.get(`${t}|${d}`);
      if (!c) return el("td", { class: "cell none" });
      const tip = `${t} ${d}: ${c.status}`;
      return el("td", { class: "cell" }, el("button", {
        type: "button", class: `sq ${c.status}`, title: tip, "data-testid": "grid-cell",
        dataset: { task: t, day: d, status: c.status }, onclick: () => show(c),
      }));
    })));
    grid.replaceChildren(el("table", { class: "grid" }, el("thead", {}, head), el("tbody", {}, ...rows)));
    if (!g.tasks.length) grid.append(el("div", { class: "muted", text: "No pipeline runs in these days (run `sparkhu pipeline run`)." }));
    Object.assign(grid.dataset, { cells: String(g.cells.length), tasks: String(g.tasks.length), days: String(g.days.length) });
  }

  function show(c) {
    // the series of a task-day are counted on demand (a grid of 1,000 series holds 390,000 of them)
    const seriesText = el("span", { "data-testid": "detail-series", text: "…" });
    const count = (x) => { seriesText.textContent = `${x.seriesSuccess} ok, ${x.seriesFailed} failed, ${x.seriesSkipped} skipped`; };
    if (vars().seriesId) seriesText.textContent = `${vars().seriesId}: ${c.status}`;
    else gql(COUNTS, { day: c.day, task: c.task }).then(({ runGrid }) => {
      const mine = runGrid.cells.find((x) => x.task === c.task);
      if (mine) count(mine); else seriesText.textContent = "not per series";
    }).catch((e) => { seriesText.textContent = String(e.message || e); });
    const rerun = el("button", { type: "button", "data-testid": "rerun", onclick: () => doRerun(c, result) }, "Re-run this task-day");
    const result = el("span", { class: "small", "data-testid": "rerun-result" });
    detail.className = "cell-detail";
    detail.replaceChildren(
      el("h2", { text: `${c.task} · ${c.day}` }),
      el("div", { class: "kv" },
        el("span", { text: "status" }), el("span", {}, el("span", { class: `badge ${c.status}`, "data-testid": "detail-status", text: c.status })),
        el("span", { text: "run" }), el("span", { text: c.runId || "" }),
        el("span", { text: "rows in → out" }), el("span", { text: `${c.rowsIn ?? "–"} → ${c.rowsOut ?? "–"}` }),
        el("span", { text: "seconds" }), el("span", { text: c.seconds == null ? "–" : String(c.seconds) }),
        el("span", { text: "series" }), seriesText,
        ...(c.error ? [el("span", { text: "error" }), el("span", { class: "bad", text: c.error })] : [])),
      el("div", { class: "toolbar" },
        c.report ? el("a", { href: c.report, target: "_blank", rel: "noopener", "data-testid": "report-link", text: "report ↗" }) : null,
        rerun, result));
  }

  async function doRerun(c, result) {
    result.textContent = "running…";
    try {
      const { rerunTaskDay } = await gql(RERUN, { name: c.task, day: c.day }, { auth: true });
      result.textContent = `re-run: ${rerunTaskDay.status}`;
      result.dataset.status = rerunTaskDay.status;
      load();
    } catch (e) {
      result.textContent = String(e.message || e);
      result.dataset.status = "error";
    }
  }

  load();
}
