// The Spark study page: the studies in the lake through GraphQL, a table, bars and executors over time.
export function mount(root, page) {
  // timers through the page, so that leaving the route stops them
  const { setInterval, setTimeout, clearInterval, clearTimeout } = page.timers;
  // ids within this page first (it may outlive its route: then it writes to its detached root)
  const $ = (id) => root.querySelector(`#${CSS.escape(id)}`) || document.getElementById(id) || document.createElement("div");
  const COLORS = ["#4ea1ff", "#ffb347", "#3ecf8e", "#ff6b6b", "#c792ea", "#f5c542", "#7fdbca", "#ff9cac"];
  const QUERY = `query { sparkStudies(limit: 50) {
    id job form input started
    runs { setting executorCores executorMemoryMb executorInstances dynamicAllocation status reason
           wallS executorsMax pendingMax cpuAvgPct cpuMaxPct memAvgMb memMaxMb taskS gcS
           shuffleReadMb shuffleWriteMb cost timeXCost counts }
    timelines { setting points { t running pending } } } }`;
  let studies = [];
  let plot = null;

  async function gql(query) {
    const res = await fetch("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query }),
    });
    const body = await res.json();
    if (body.errors && body.errors.length) throw new Error(body.errors[0].message);
    return body.data;
  }

  const num = (v, digits = 1) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
  const cell = (text, cls) => {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  };

  function renderTable(study) {
    const body = $("study-rows");
    body.replaceChildren();
    for (const r of study.runs) {
      const tr = document.createElement("tr");
      tr.dataset.setting = r.setting;
      tr.dataset.status = r.status;
      tr.append(cell(r.setting));
      tr.append(cell(`${r.executorCores} × ${r.executorMemoryMb} MB × ${r.executorInstances}`, "num"));
      tr.append(cell(r.dynamicAllocation ? "on" : "off"));
      const status = cell("");
      const badge = document.createElement("span");
      badge.className = "badge " + (r.status === "ok" ? "success" : r.status === "will pend" ? "pend" : "failed");
      badge.textContent = r.status;
      status.append(badge);
      if (r.reason) {
        const reason = document.createElement("div");
        reason.className = "reason";
        reason.textContent = r.reason;
        status.append(reason);
      }
      tr.append(status);
      tr.append(cell(num(r.wallS), "num"));
      tr.append(cell(num(r.executorsMax, 0), "num"));
      tr.append(cell(num(r.pendingMax, 0), "num"));
      tr.append(cell(`${num(r.cpuAvgPct)} / ${num(r.cpuMaxPct)}`, "num"));
      tr.append(cell(`${num(r.memAvgMb, 0)} / ${num(r.memMaxMb, 0)}`, "num"));
      tr.append(cell(num(r.taskS), "num"));
      tr.append(cell(num(r.gcS, 2), "num"));
      tr.append(cell(`${num(r.shuffleReadMb, 2)} / ${num(r.shuffleWriteMb, 2)}`, "num"));
      tr.append(cell(num(r.cost, 5), "num"));
      tr.append(cell(num(r.timeXCost, 5), "num"));
      body.append(tr);
    }
  }

  function renderBars(study) {
    const done = study.runs.filter((r) => r.status === "ok");
    const bars = $("bars");
    bars.replaceChildren();
    for (const [key, title, digits] of [["wallS", "Wall time (s)", 1], ["cost", "Cost", 5], ["timeXCost", "Time × cost", 5]]) {
      const chart = document.createElement("div");
      chart.className = "bar-chart";
      chart.dataset.testid = `bars-${key}`;
      chart.setAttribute("data-testid", `bars-${key}`);
      const h = document.createElement("h3");
      h.textContent = title;
      chart.append(h);
      const max = Math.max(...done.map((r) => r[key] || 0), 1e-12);
      const min = Math.min(...done.map((r) => r[key] || 0));
      for (const r of done) {
        const row = document.createElement("div");
        row.className = "bar-row";
        const bar = document.createElement("div");
        bar.className = "bar" + (r[key] === min ? " best" : "");
        bar.style.width = `${(100 * (r[key] || 0)) / max}%`;
        const track = document.createElement("div");
        track.append(bar);
        const label = document.createElement("span");
        label.textContent = r.setting;
        const value = document.createElement("span");
        value.className = "value";
        value.textContent = num(r[key], digits);
        row.append(label, track, value);
        chart.append(row);
      }
      bars.append(chart);
    }
  }

  function renderExecutors(study) {
    const el = $("executors");
    if (plot) { plot.destroy(); plot = null; }
    const lines = study.timelines.filter((tl) => tl.points.length);
    el.dataset.lines = String(lines.length);
    if (!lines.length) return;
    const times = [...new Set(lines.flatMap((tl) => tl.points.map((p) => p.t)))].sort((a, b) => a - b);
    const data = [times];
    const series = [{ label: "s" }];
    lines.forEach((tl, i) => {
      const color = COLORS[i % COLORS.length];
      for (const kind of ["running", "pending"]) {
        let last = 0, j = 0;
        const ys = times.map((t) => {
          while (j < tl.points.length && tl.points[j].t <= t) { last = tl.points[j][kind]; j++; }
          return t < tl.points[0].t || t > tl.points[tl.points.length - 1].t ? null : last;
        });
        data.push(ys);
        series.push({ label: `${tl.setting} ${kind}`, stroke: color, width: 2, dash: kind === "pending" ? [6, 4] : undefined,
                      paths: uPlot.paths.stepped({ align: 1 }) });
      }
    });
    plot = new uPlot({
      width: Math.max(el.clientWidth, 400), height: 320, series,
      scales: { x: { time: false } },
      axes: [{ stroke: "#8b95a5", label: "seconds since the run started" }, { stroke: "#8b95a5", label: "executors" }],
    }, data, el);
  }

  function show(id) {
    const study = studies.find((s) => s.id === id);
    if (!study) return;
    $("study-title").textContent = `${study.job} (${study.form}) — ${study.id}`;
    $("study-sub").textContent = `input ${study.input}, started ${study.started}`;
    renderTable(study);
    renderBars(study);
    renderExecutors(study);
  }

  async function load() {
    try {
      studies = (await gql(QUERY)).sparkStudies;
    } catch (err) {
      $("error").textContent = String(err.message || err);
      $("error").hidden = false;
      return;
    }
    const pick = $("study-pick");
    pick.replaceChildren(...studies.map((s) => {
      const o = document.createElement("option");
      o.value = s.id;
      o.textContent = `${s.id} · ${s.job}`;
      return o;
    }));
    pick.onchange = () => show(pick.value);
    if (studies.length) show(studies[0].id);
    document.body.dataset.loaded = "true";
  }

  load();
}
