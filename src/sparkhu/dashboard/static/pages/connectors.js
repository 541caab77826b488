// sparkhu dashboard, connectors page: each declared connector's state, and per task its points,
// throughput, watermark, lag and quarantined records (GET /connectors?expand=status&expand=info);
// pause, resume and restart with the gateway token. Plain JS, no build step.
export function mount(root, page) {
  // timers through the page, so that leaving the route stops them
  const { setInterval, setTimeout, clearInterval, clearTimeout } = page.timers;
  // ids within this page first (it may outlive its route: then it writes to its detached root)
  const $ = (id) => root.querySelector(`#${CSS.escape(id)}`) || document.getElementById(id) || document.createElement("div");
  const REFRESH_MS = 2000;

  function showError(text) {
    const box = $("error");
    box.textContent = text || "";
    box.hidden = !text;
  }

  const cell = (text, cls) => { const td = document.createElement("td"); td.textContent = text == null ? "" : String(text); if (cls) td.className = cls; return td; };
  const fmtNum = (n) => (n == null ? "" : Number(n).toLocaleString("en-US"));
  const fmtMark = (w) => (w == null ? "" : typeof w === "string" ? w : JSON.stringify(w));

  async function act(name, verb) {
    const method = verb === "restart" ? "POST" : "PUT";
    const headers = {};
    const token = $("token").value.trim();
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(`/connectors/${encodeURIComponent(name)}/${verb}`, { method, headers });
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      showError(`${verb} ${name}: ${body.message || body.error || res.status}`);
      return;
    }
    showError("");
    refresh();
  }

  function buttons(name, state) {
    const td = document.createElement("td");
    const verbs = state === "PAUSED" ? ["resume", "restart"] : ["pause", "restart"];
    for (const verb of verbs) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = verb;
      b.dataset.testid = `${verb}-${name}`;
      b.addEventListener("click", () => act(name, verb));
      td.appendChild(b);
    }
    return td;
  }

  async function refresh() {
    let body;
    try {
      const res = await fetch("/connectors?expand=status&expand=info");
      body = await res.json();
      if (!res.ok) throw new Error(body.message || res.status);
    } catch (err) {
      showError(`cannot read /connectors: ${err.message}`);
      return;
    }
    const tbody = $("connectors");
    tbody.replaceChildren();
    const names = Object.keys(body).sort();
    if (!names.length) {
      const tr = document.createElement("tr");
      tr.appendChild(cell("no connector declared; POST /connectors or sparkhu connectors put", "muted")).colSpan = 10;
      tbody.appendChild(tr);
      return;
    }
    for (const name of names) {
      const status = body[name].status || {};
      const info = body[name].info || {};
      const state = (status.connector || {}).state || "UNASSIGNED";
      const tasks = status.tasks && status.tasks.length ? status.tasks : [{}];
      tasks.forEach((task, i) => {
        const tr = document.createElement("tr");
        tr.dataset.testid = `connector-${name}`;
        tr.appendChild(cell(i === 0 ? name : ""));
        tr.appendChild(cell(i === 0 ? (info.config || {})["connector.class"] : ""));
        tr.appendChild(cell(task.state || state, `state-${task.state || state}`));
        tr.appendChild(cell(task.name || ""));
        tr.appendChild(cell(fmtNum(task.points), "num"));
        tr.appendChild(cell(task.points_per_s == null ? "" : Number(task.points_per_s).toFixed(1), "num"));
        tr.appendChild(cell(fmtMark(task.watermark)));
        tr.appendChild(cell(task.lag_s == null ? "" : Number(task.lag_s).toFixed(1), "num"));
        tr.appendChild(cell(fmtNum(task.quarantined), "num"));
        tr.appendChild(i === 0 ? buttons(name, state) : cell(""));
        tbody.appendChild(tr);
        if (task.trace) {
          const row = document.createElement("tr");
          const td = cell(task.trace, "trace");
          td.colSpan = 10;
          row.appendChild(td);
          tbody.appendChild(row);
        }
      });
    }
  }

  refresh();
  setInterval(refresh, REFRESH_MS);
}
