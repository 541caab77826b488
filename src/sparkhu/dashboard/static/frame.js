// The dashboard's frame: one nav, hash routes (#/<page>?<params>), pages mounted one at a time.
// Pages are listed in pages/index.js; each gets a `page` object with shared helpers (below) and
// timers that stop when the route changes. Plain ES modules, no build step, no CDN.
import { PAGES } from "./pages/index.js";

const TOKEN_KEY = "sparkhu.token";
const $ = (id) => document.getElementById(id);
const config = { timezone: "UTC", maxPoints: 10000, mutationsEnabled: false };
let current = null; // { path, cleanup, timers }
let generation = 0;

// ---------- helpers every page may use -----------------------------------------------------

export function token() {
  return (sessionStorage.getItem(TOKEN_KEY) || "").trim();
}

export async function gql(query, variables, { auth = false } = {}) {
  const headers = { "content-type": "application/json" };
  if (auth && token()) headers.authorization = `Bearer ${token()}`;
  const res = await fetch("/graphql", { method: "POST", headers, body: JSON.stringify({ query, variables }) });
  const body = await res.json();
  if (body.errors && body.errors.length) {
    const e = body.errors[0];
    throw new Error(`${(e.extensions && e.extensions.code) || "ERROR"}: ${e.message}`);
  }
  return body.data;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c != null) node.append(c);
  return node;
}

export function fmtTime(ms, withSeconds = false) {
  if (ms == null) return "";
  const f = new Intl.DateTimeFormat("sv-SE", {
    timeZone: config.timezone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: withSeconds ? "2-digit" : undefined, hourCycle: "h23",
  });
  return f.format(new Date(ms));
}

export const fmtNum = (v, digits = 4) =>
  v == null || Number.isNaN(v) ? "–" : Math.abs(v) >= 1000 ? Number(v).toFixed(0) : Number(v).toPrecision(digits);

export const COLORS = ["#4ea1ff", "#ffb347", "#3ecf8e", "#ff6b6b", "#c792ea", "#f5c542", "#7fdbca", "#ff9cac",
  "#9ccc65", "#80cbc4", "#ffab91", "#b39ddb"];

/** The dataset of a series id (source/measurement/field): `<source>_<measurement>`. */
export const datasetOf = (id) => { const [s, m] = id.split("/"); return `${s}_${m}`; };

export async function seriesList() {
  const { series } = await gql("{ series(limit: 10000) { id unit periodSeconds firstTs lastTs count } }");
  return series;
}

// ---------- routing --------------------------------------------------------------------------

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  return { path: path || PAGES[0].path, params: new URLSearchParams(query || "") };
}

/** Change the current route's parameters without re-mounting the page. */
export function setParams(params) {
  const { path } = parseHash();
  const q = params.toString();
  history.replaceState(null, "", `#/${path}${q ? "?" + q : ""}`);
}

function timers() {
  const ids = { intervals: new Set(), timeouts: new Set() };
  return {
    setInterval: (fn, ms) => { const id = window.setInterval(fn, ms); ids.intervals.add(id); return id; },
    setTimeout: (fn, ms) => { const id = window.setTimeout(fn, ms); ids.timeouts.add(id); return id; },
    clearInterval: (id) => { window.clearInterval(id); ids.intervals.delete(id); },
    clearTimeout: (id) => { window.clearTimeout(id); ids.timeouts.delete(id); },
    stop: () => { ids.intervals.forEach((id) => window.clearInterval(id)); ids.timeouts.forEach((id) => window.clearTimeout(id)); },
  };
}

async function template(name) {
  const text = await (await fetch(name)).text();
  const doc = new DOMParser().parseFromString(text, "text/html");
  const body = doc.querySelector("[data-page-root]") || doc.querySelector("main");
  return [...doc.querySelectorAll("head style"), body];
}

async function route() {
  const { path, params } = parseHash();
  const entry = PAGES.find((p) => p.path === path) || PAGES[0];
  if (current && current.path === entry.path && current.params === params.toString()) return;
  const mine = ++generation;
  if (current) {
    try { if (current.cleanup) current.cleanup(); } catch (e) { console.warn(e); }
    current.timers.stop();
  }
  // a fresh root per visit: a page's late callbacks write to its own detached root, not the next page
  const holder = $("page");
  const root = el("div", { class: "page-root" });
  holder.replaceChildren(root);
  holder.dataset.route = "";
  delete document.body.dataset.ready;
  delete document.body.dataset.loaded;
  for (const a of $("nav").children) a.classList.toggle("active", a.dataset.path === entry.path);
  $("page-title").textContent = entry.title.toLowerCase();
  document.title = `sparkhu — ${entry.title}`;
  const pageTimers = timers();
  current = { path: entry.path, params: params.toString(), cleanup: null, timers: pageTimers };
  try {
    const [mod, nodes] = await Promise.all([entry.load(), entry.template ? template(entry.template) : []]);
    if (mine !== generation) return;
    root.append(...nodes.filter(Boolean));
    holder.dataset.route = entry.path;
    const page = { root, params, config, timers: pageTimers, gql, el, fmtTime, fmtNum, setParams, token };
    current.cleanup = (await mod.mount(root, page)) || null;
  } catch (e) {
    root.append(el("div", { class: "error", role: "alert", "data-testid": "error", text: String(e.message || e) }));
  }
}

async function start() {
  try {
    Object.assign(config, await (await fetch("/api/config")).json());
  } catch (e) { /* the pages report what does not answer */ }
  $("tz").textContent = config.timezone;
  const clock = () => { $("clock").textContent = fmtTime(Date.now(), true).slice(11); };
  clock();
  window.setInterval(clock, 1000);
  $("token").value = token();
  $("token").addEventListener("change", () => sessionStorage.setItem(TOKEN_KEY, $("token").value.trim()));
  $("nav").replaceChildren(...PAGES.map((p) =>
    el("a", { href: `#/${p.path}`, "data-testid": `nav-${p.path}`, dataset: { path: p.path }, text: p.title })));
  window.addEventListener("hashchange", route);
  await route();
}

start();
