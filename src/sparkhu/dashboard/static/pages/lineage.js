// sparkhu dashboard, lineage page: the graph of the GraphQL `lineage` query, one column per stage of
// the data's way; a node's record and its neighbours on click. Plain JS, no build step.
export function mount(root, page) {
  // timers through the page, so that leaving the route stops them
  const { setInterval, setTimeout, clearInterval, clearTimeout } = page.timers;
  // ids within this page first (it may outlive its route: then it writes to its detached root)
  const $ = (id) => root.querySelector(`#${CSS.escape(id)}`) || document.getElementById(id) || document.createElement("div");
  const STAGES = [
    ["source", "Sources"], ["topic", "Topics"], ["dataset", "Datasets"], ["task", "Pipeline tasks"],
    ["train", "Training runs"], ["model", "Model versions"], ["forecast", "Forecasts"],
    ["retention", "Retention"], ["series", "Series"],
  ];
  const QUERY = `query($id: String!) { lineage(seriesId: $id) {
    seriesId nodes { id kind label detail } edges { source target relation } } }`;

  function showError(text) {
    const box = $("error");
    box.textContent = text || "";
    box.hidden = !text;
  }

  async function gql(query, variables) {
    const res = await fetch("/graphql", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query, variables }),
    });
    const body = await res.json();
    if (body.errors && body.errors.length) throw new Error(body.errors[0].message);
    return body.data;
  }

  function summary(node) {
    const d = node.detail || {};
    if (node.kind === "dataset" && d.rows != null) return `${Number(d.rows).toLocaleString("en-US")} rows, ${d.partitions} partitions`;
    if ((node.kind === "task" || node.kind === "train") && d.status) return `${d.status}${d.runs > 1 ? `, ${d.runs} runs` : ""}`;
    if (node.kind === "model" && d.feature_view) return `feature view ${d.feature_view} v${d.feature_view_version}`;
    if (node.kind === "source" && d.kind) return d.kind;
    return "";
  }

  function select(graph, node) {
    const linked = new Set();
    const lines = [];
    for (const e of graph.edges) {
      if (e.source === node.id) { linked.add(e.target); lines.push(`→ ${e.relation} ${e.target}`); }
      if (e.target === node.id) { linked.add(e.source); lines.push(`← ${e.relation} ${e.source}`); }
    }
    for (const el of document.querySelectorAll(".node")) {
      el.classList.toggle("selected", el.dataset.id === node.id);
      el.classList.toggle("linked", linked.has(el.dataset.id));
    }
    $("detail-title").textContent = `${node.kind}: ${node.label}`;
    $("detail").textContent = JSON.stringify(node.detail, null, 2) + (lines.length ? `\n\n${lines.join("\n")}` : "");
  }

  function draw(graph) {
    const flow = $("flow");
    flow.replaceChildren();
    for (const [kind, title] of STAGES) {
      const nodes = graph.nodes.filter((n) => n.kind === kind);
      if (!nodes.length) continue;
      const col = document.createElement("div");
      col.className = "stage";
      col.setAttribute("data-testid", `stage-${kind}`);
      const h = document.createElement("h3");
      h.textContent = `${title} (${nodes.length})`;
      col.append(h);
      for (const n of nodes) {
        const el = document.createElement("div");
        el.className = "node" + ((n.detail || {}).status === "failed" ? " failed" : "");
        el.dataset.id = n.id;
        el.setAttribute("data-testid", "lineage-node");
        const label = document.createElement("div");
        label.className = "label";
        label.textContent = n.label;
        const meta = document.createElement("div");
        meta.className = "meta";
        meta.textContent = summary(n);
        el.append(label, meta);
        el.addEventListener("click", () => select(graph, n));
        col.append(el);
      }
      flow.append(col);
    }
  }

  async function show(seriesId) {
    showError("");
    try {
      const data = await gql(QUERY, { id: seriesId });
      draw(data.lineage);
      root.dataset.ready = "true"; document.body.dataset.ready = "true";
      page.setParams(new URLSearchParams({ series: seriesId }));
    } catch (err) {
      showError(err.message);
      root.dataset.ready = "true"; document.body.dataset.ready = "true";
    }
  }

  async function fillSeries() {
    try {
      const data = await gql("{ series(limit: 1000) { id } }", {});
      const list = $("series-list");
      for (const s of data.series) { const o = document.createElement("option"); o.value = s.id; list.append(o); }
      if (!$("series").value && data.series.length) $("series").value = data.series[0].id;
    } catch (err) {
      showError(err.message);
    }
  }

  $("pick").addEventListener("submit", (ev) => { ev.preventDefault(); show($("series").value.trim()); });
  const wanted = page.params.get("series");
  fillSeries().then(() => {
    if (wanted) $("series").value = wanted;
    if ($("series").value) show($("series").value);
  });
}
