// Autopilot: the controller's training policies (set or delete one with the token) and, per series,
// its champion timeline (which version served from when to when, why, with the numbers behind it).
const POLICIES = `{ policies { name series origin schedule drift minInterval maxModelAge budgetPerHour window engine margin minPoints backtestNotWorse rollbackMargin gateTraining } }`;
const HISTORY = `query H($id: String!) { modelHistory(seriesId: $id) { version since until event actor reason previousVersion numbers } }`;
const SET = `mutation S($p: JSON!) { setPolicy(policy: $p) { name } }`;
const DELETE = `mutation D($n: String!) { deletePolicy(name: $n) }`;

export function mount(root, page) {
  const { el, gql, fmtTime, fmtNum } = page;
  const policies = el("tbody", { "data-testid": "policy-rows" });
  const editor = el("textarea", { class: "pick", rows: "6", cols: "70", "data-testid": "policy-json",
    placeholder: '{"name": "meters", "series": "ampds2/electricity/*", "schedule": "02:00", "gate": {"margin": 0.05}}' });
  const save = el("button", { type: "button", text: "Set policy", "data-testid": "policy-save" });
  const pick = el("select", { class: "pick", "data-testid": "autopilot-series" });
  const timeline = el("div", { class: "timeline", "data-testid": "timeline" });
  const history = el("tbody", { "data-testid": "history-rows" });
  const error = el("div", { class: "error", role: "alert", "data-testid": "error", hidden: true });
  const head = ["Name", "Series", "Schedule", "Drift", "Min interval", "Max age", "Budget/h", "Window", "Engine", "Margin", "Min points", "Back-test", "Rollback", "Gates train", "From", ""];
  root.append(el("main", { class: "main" },
    el("section", { class: "panel" }, el("div", { class: "panel-head" },
      el("div", {}, el("h1", { text: "Autopilot" }), el("div", { class: "subtitle", text: "Training policies: when series are retrained, how a challenger is promoted, when a promotion is rolled back." }))),
      el("div", { class: "table-wrap" }, el("table", { class: "runs" }, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { text: h })))), policies)),
      el("div", { class: "toolbar" }, editor, save, el("span", { class: "muted small", text: "needs the token (top bar)" })), error),
    el("section", { class: "panel" }, el("div", { class: "panel-head" }, el("h2", { text: "Champion timeline" }), pick), timeline,
      el("div", { class: "table-wrap" }, el("table", { class: "runs" },
        el("thead", {}, el("tr", {}, ...["Version", "Since", "Until", "Event", "By", "Reason", "Numbers"].map((h) => el("th", { text: h })))), history)))));
  const showError = (t) => { error.textContent = t || ""; error.hidden = !t; };

  async function loadPolicies() {
    const rows = (await gql(POLICIES)).policies;
    policies.replaceChildren(...(rows.length ? rows.map((p) => el("tr", { "data-testid": `policy-${p.name}` },
      ...[p.name, p.series, p.schedule || "", p.drift ? "yes" : "no", p.minInterval, p.maxModelAge || "", p.budgetPerHour, p.window, p.engine,
        fmtNum(p.margin, 3), p.minPoints, p.backtestNotWorse ? "not worse" : "-", fmtNum(p.rollbackMargin, 3), p.gateTraining ? "yes" : "no", p.origin]
        .map((v) => el("td", { text: String(v) })),
      el("td", {}, p.origin === "catalog" ? el("button", { type: "button", text: "delete", "data-testid": `policy-delete-${p.name}`,
        onclick: () => run(() => gql(DELETE, { n: p.name }, { auth: true })) }) : ""))) :
      [el("tr", {}, el("td", { colspan: String(head.length), class: "muted", text: "No training policy: the controller does not run (sparkhu policies set, or [[policies]] in sparkhu.toml)." }))]));
  }

  function numbers(n) {
    return Object.entries(n || {}).filter(([, v]) => typeof v === "number").map(([k, v]) => `${k} ${fmtNum(v, 4)}`).join(" · ");
  }

  async function loadHistory() {
    const id = pick.value;
    if (!id) return;
    page.setParams(new URLSearchParams({ series: id }));
    const rows = (await gql(HISTORY, { id })).modelHistory;
    const now = Date.now();
    const first = rows.length ? Date.parse(rows[0].since) : now;
    const span = Math.max(now - first, 1);
    timeline.replaceChildren(...rows.map((r) => {
      const from = Date.parse(r.since), to = r.until ? Date.parse(r.until) : now;
      return el("div", { class: `bar-row ${r.event}`, "data-testid": "timeline-bar", dataset: { version: r.version, event: r.event } },
        el("span", { text: `v${r.version} (${r.event})` }),
        el("div", {}, el("div", { class: `bar${r.until ? "" : " champion"}`, style: `margin-left: ${(100 * (from - first)) / span}%; width: ${Math.max(0.5, (100 * (to - from)) / span)}%` })),
        el("span", { class: "value", text: r.actor }));
    }));
    history.replaceChildren(...(rows.length ? rows.map((r) => el("tr", { "data-testid": "history-row" },
      el("td", { text: `v${r.version}` }), el("td", { text: fmtTime(Date.parse(r.since)) }), el("td", { text: r.until ? fmtTime(Date.parse(r.until)) : "champion" }),
      el("td", { text: r.event }), el("td", { text: r.actor }), el("td", { text: r.reason }), el("td", { text: numbers(r.numbers) }))) :
      [el("tr", {}, el("td", { colspan: "7", class: "muted", text: "No champion recorded for this series yet." }))]));
  }

  async function run(action) {
    try { await action(); showError(""); await loadPolicies(); } catch (e) { showError(String(e.message || e)); }
  }

  save.addEventListener("click", () => run(async () => {
    let body;
    try { body = JSON.parse(editor.value); } catch (e) { throw new Error(`not JSON: ${e.message}`); }
    await gql(SET, { p: body }, { auth: true });
  }));

  async function start() {
    try {
      await loadPolicies();
      const { series } = await gql("{ series(limit: 10000) { id } }");
      pick.replaceChildren(...series.map((s) => el("option", { value: s.id, text: s.id })));
      const wanted = page.params.get("series");
      if (wanted && series.some((s) => s.id === wanted)) pick.value = wanted;
      pick.addEventListener("change", () => loadHistory().catch((e) => showError(String(e.message || e))));
      await loadHistory();
    } catch (e) { showError(String(e.message || e)); }
    document.body.dataset.ready = "true";
  }

  start();
}
