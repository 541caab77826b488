// The frame's pages, in nav order: one entry per page. A page is a module exporting
// `mount(root, page)` (returning an optional cleanup function) and, optionally, an HTML
// template whose `[data-page-root]` element (else its <main>) and <style> go into the frame.
// See docs/dashboard.md, "Adding a page".
export const PAGES = [
  { path: "forecasts", title: "Forecasts", template: "forecasts.html", load: () => import("./forecasts.js") },
  { path: "explorer", title: "Explorer", load: () => import("./explorer.js") },
  { path: "runs", title: "Runs", load: () => import("./runs.js") },
  { path: "quality", title: "Quality", load: () => import("./quality.js") },
  { path: "models", title: "Models", load: () => import("./models.js") },
  { path: "autopilot", title: "Autopilot", load: () => import("./autopilot.js") },
  { path: "connectors", title: "Connectors", template: "connectors.html", load: () => import("./connectors.js") },
  { path: "lineage", title: "Lineage", template: "lineage.html", load: () => import("./lineage.js") },
  { path: "retention", title: "Retention", template: "retention.html", load: () => import("./retention.js") },
  { path: "spark", title: "Spark studies", template: "spark.html", load: () => import("./spark.js") },
];
