// sparkhu dashboard, retention page: edit the backup and disposal policies (the original's page,
// through its REST API GET/PUT /retention/period), and show the dry-run plan, storage by target and
// the audit log (GraphQL). Plain JS, no build step.
export function mount(root, page) {
  // timers through the page, so that leaving the route stops them
  const { setInterval, setTimeout, clearInterval, clearTimeout } = page.timers;
  // ids within this page first (it may outlive its route: then it writes to its detached root)
  const $ = (id) => root.querySelector(`#${CSS.escape(id)}`) || document.getElementById(id) || document.createElement("div");
  const TOKEN_KEY = "sparkhu.token";
  const REFRESH_MS = 3000;

  function headers() {
    const h = { "content-type": "application/json" };
    const token = $("token").value.trim();
    if (token) h.authorization = `Bearer ${token}`;
    return h;
  }

  function showError(text) {
    const box = $("error");
    box.textContent = text || "";
    box.hidden = !text;
  }

  async function gql(query, variables) {
    const res = await fetch("/graphql", { method: "POST", headers: headers(), body: JSON.stringify({ query, variables }) });
    const body = await res.json();
    if (body.errors && body.errors.length) throw new Error(body.errors[0].message);
    return body.data;
  }

  const fmtBytes = (n) => {
    if (n == null) return "";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
  };
  const fmtNum = (n) => (n == null ? "" : Number(n).toLocaleString("en-US"));
  const cell = (text, cls) => { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; return td; };
  function fill(tbody, rows, columns, empty) {
    tbody.replaceChildren();
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = cell(empty, "muted"); td.colSpan = columns; tr.append(td); tbody.append(tr);
      return;
    }
    for (const r of rows) tbody.append(r);
  }

  // ---------- the two policies (the original's form, the original's REST API) -------------------

  const monthsOf = (period) => { const m = /^(\d+) (months|years)$/.exec(period || ""); return m ? Number(m[1]) * (m[2] === "years" ? 12 : 1) : null; };

  async function loadPolicy(condition) {
    const res = await fetch(`/retention/period?condition=${condition}`);
    const body = await res.json();
    if (!res.ok) throw new Error(body.message);
    const months = monthsOf(body.period);
    $(`${condition}-current`).textContent =
      `current: ${body.period}` + (condition === "backup" && body.startDate ? `, from ${body.startDate}` : "");
    $(`${condition}-current`).dataset.period = body.period;
    document.querySelector(`input[name=${condition}-mode][value=${months ? "months" : "none"}]`).checked = true;
    $(`${condition}-months`).value = months || "";
    if (condition === "backup") $("backup-start").value = body.startDate || "";
  }

  // numbers only, start date not in the future: checked here as the original page did, and again by the API
  function validate(condition) {
    const mode = document.querySelector(`input[name=${condition}-mode]:checked`);
    if (!mode || mode.value === "none") return { period: "no policy" };
    const raw = $(`${condition}-months`).value.trim();
    if (!/^[0-9]+$/.test(raw) || Number(raw) < 1) throw new Error("months: enter a whole number of months (numbers only)");
    const body = { period: `${Number(raw)} months` };
    if (condition === "backup") {
      const start = $("backup-start").value;
      if (start) {
        const today = new Date().toISOString().slice(0, 10);
        if (start > today) throw new Error("start date: must not be in the future");
        body.startDate = start;
      }
    }
    return body;
  }

  async function save(condition, event) {
    event.preventDefault();
    const error = $(`${condition}-error`);
    error.textContent = "";
    let body;
    try { body = validate(condition); } catch (e) { error.textContent = e.message; return; }
    const res = await fetch("/retention/period", { method: "PUT", headers: headers(), body: JSON.stringify({ ...body, condition }) });
    if (res.status !== 204) {
      let message = `HTTP ${res.status}`;
      try { const b = await res.json(); message = b.message || (b.error && b.error.message) || message; } catch (_) { /* no body */ }
      error.textContent = message;
      return;
    }
    await loadPolicy(condition);
    await refresh();
  }

  // ---------- plan, storage, audit ----------------------------------------------------------------

  async function refreshPlan() {
    const { retentionPlan: plan } = await gql("{ retentionPlan { id rows bytes partitions items { id policy target name key action mode rows bytes detail } } }");
    $("plan-totals").textContent = `${plan.items.length} item(s) · ${fmtNum(plan.rows)} rows · ${fmtBytes(plan.bytes)} · ${plan.partitions} partition(s)`;
    $("plan-totals").dataset.items = String(plan.items.length);
    fill($("plan"), plan.items.map((i) => {
      const tr = document.createElement("tr");
      tr.dataset.testid = "plan-row";
      tr.setAttribute("data-testid", "plan-row");
      const what = [i.target, i.name, i.key].filter(Boolean).join("/") + (i.action === "downsample" ? ` → ${i.detail.every_s}s` : "");
      tr.append(cell(i.id), cell(i.policy), cell(what), cell(i.action), cell(i.mode), cell(fmtNum(i.rows), "num"), cell(fmtBytes(i.bytes), "num"));
      return tr;
    }), 7, "Nothing to do: every target is within its policies.");
  }

  async function refreshStorage() {
    const { retentionStorage: rows } = await gql("{ retentionStorage { target name bytes rows partitions } }");
    fill($("storage"), rows.map((s) => {
      const tr = document.createElement("tr");
      tr.setAttribute("data-testid", "storage-row");
      tr.dataset.target = s.target;
      tr.append(cell(s.target), cell(s.name), cell(fmtBytes(s.bytes), "num"), cell(fmtNum(s.rows), "num"), cell(fmtNum(s.partitions), "num"));
      return tr;
    }), 5, "No storage yet.");
  }

  async function refreshAudit() {
    const { retentionAudit: rows } = await gql("{ retentionAudit(limit: 50) { at actor action target detail } }");
    fill($("audit"), rows.map((a) => {
      const tr = document.createElement("tr");
      tr.setAttribute("data-testid", "audit-row");
      tr.dataset.action = a.action;
      const detail = JSON.stringify(a.detail);
      tr.append(cell(a.at.replace("T", " ").replace("Z", "")), cell(a.actor), cell(a.action), cell(a.target), cell(detail.length > 90 ? detail.slice(0, 90) + "…" : detail));
      return tr;
    }), 5, "No retention action yet.");
  }

  async function refresh() {
    try {
      await Promise.all([refreshPlan(), refreshStorage(), refreshAudit()]);
      showError("");
    } catch (e) {
      showError(e.message);
    }
  }

  async function start() {
    $("token").value = sessionStorage.getItem(TOKEN_KEY) || "";
    $("token").addEventListener("change", () => sessionStorage.setItem(TOKEN_KEY, $("token").value.trim()));
    $("backup-form").addEventListener("submit", (e) => save("backup", e));
    $("disposal-form").addEventListener("submit", (e) => save("disposal", e));
    $("plan-refresh").addEventListener("click", refreshPlan);
    try {
      await Promise.all([loadPolicy("backup"), loadPolicy("disposal")]);
    } catch (e) {
      showError(e.message);
    }
    await refresh();
    document.body.dataset.ready = "true";
    // a policy change runs retention in the background: keep the storage and the audit current
    setInterval(() => Promise.all([refreshStorage(), refreshAudit()]).catch((e) => showError(e.message)), REFRESH_MS);
  }

  start();
}
