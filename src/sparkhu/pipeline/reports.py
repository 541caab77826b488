"""Reports of the pipeline: per task-day a JSON file and a self-contained HTML page.

``<report_dir>/<dataset>/<day>/<task>.json`` holds the run (status, attempts, rows, seconds),
the series counts, the skip reasons, the failures, the figures of the task's per-series
reports aggregated over series (numbers: count, sum, mean, min, max; words: counts per
value) and the per-series figures themselves. ``<task>.html`` shows the same with inline
CSS and inline SVG histograms (no external file, no script), and ``index.html`` lists the
day's tasks. ``<day>`` is the interval's first day (``2024-01-01``) or its span
(``2024-01-01_2024-01-07``). :class:`ReportWriter` is the hook that writes them after each
task-day (``sparkhu pipeline run`` registers it under ``<home>/reports``).

>>> figures = aggregate([{"gaps": 2, "strategy": "linear"}, {"gaps": 4, "strategy": "mean"}, {"gaps": 0}])
>>> figures["gaps"]
{'count': 3, 'sum': 6.0, 'mean': 2.0, 'min': 0.0, 'max': 4.0}
>>> figures["strategy"]
{'linear': 1, 'mean': 1}
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from sparkhu.pipeline.base import Task
from sparkhu.pipeline.hooks import PipelineHooks
from sparkhu.pipeline.runs import TaskRun, jsonable

log = logging.getLogger(__name__)

MAX_FAILURES = 200
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}.success{color:#1a7f37}.failed{color:#c62828}.skipped{color:#9a6700}
.plots{display:flex;flex-wrap:wrap;gap:1em}.plot{border:1px solid #eee;padding:.5em}
"""


class ReportWriter(PipelineHooks):
    """Writes the report of each finished task-day under ``report_dir`` (its paths go to
    ``TaskRun.reports``); a file system error is logged, not raised."""

    def __init__(self, report_dir: str | Path, dataset: str) -> None:
        self.report_dir = Path(report_dir)
        self.dataset = dataset

    def after_task_day(self, task: Task, run: TaskRun) -> None:
        try:
            run.reports = write_report(self.report_dir, self.dataset, task, run)
        except OSError as exc:
            log.warning("cannot write the report of %s %s: %s", task.name, run.start.date(), exc)


def aggregate(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Figures of many per-series reports: numbers summarised, words and booleans counted.

    Nested mappings are flattened with dotted keys; lists count their length.
    """
    values: dict[str, list[Any]] = {}
    for report in reports:
        for key, value in _flatten(report):
            values.setdefault(key, []).append(value)
    out: dict[str, Any] = {}
    for key, items in values.items():
        numbers = [float(v) for v in items if _is_number(v)]
        if numbers and len(numbers) == len(items):
            finite = [v for v in numbers if math.isfinite(v)]
            if not finite:
                out[key] = {"count": len(numbers)}
                continue
            arr = np.asarray(finite)
            out[key] = {
                "count": len(numbers),
                "sum": float(arr.sum()),
                "mean": float(arr.mean()),
                "min": float(arr.min()),
                "max": float(arr.max()),
            }
        else:
            counts: dict[str, int] = {}
            for v in items:
                counts[str(v)] = counts.get(str(v), 0) + 1
            out[key] = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
    return out


def report_dict(dataset: str, task: Task, run: TaskRun) -> dict[str, Any]:
    """The JSON document of one task-interval."""
    per_series = {s.series_id: s.report for s in run.series if s.report}
    failures = [{"series_id": s.series_id, "error": s.error} for s in run.series if s.status == "failed"]
    return {
        "dataset": dataset,
        "task": task.name,
        "function": f"{task.fn.__module__}.{task.fn.__qualname__}",
        "params": jsonable(task.params),
        "lookback_s": task.lookback.total_seconds(),
        "start": run.start.isoformat(),
        "end": run.end.isoformat(),
        "status": run.status,
        "attempts": run.attempts,
        "seconds": round(run.seconds, 3),
        "error": run.error,
        "rows_in": run.rows_in,
        "rows_out": run.rows_out,
        "series": {
            "total": len(run.series),
            "success": run.count("success"),
            "failed": run.count("failed"),
            "skipped": run.count("skipped"),
        },
        "skipped": run.skipped,
        "failures": failures[:MAX_FAILURES],
        "figures": aggregate(list(per_series.values())),
        "per_series": {sid: jsonable(r) for sid, r in per_series.items()},
    }


def write_report(report_dir: Path, dataset: str, task: Task, run: TaskRun) -> list[Path]:
    """Write ``<task>.json`` and ``<task>.html`` for one task-interval and refresh the day's index."""
    folder = Path(report_dir) / dataset / day_label(run)
    folder.mkdir(parents=True, exist_ok=True)
    doc = report_dict(dataset, task, run)
    json_path = folder / f"{task.name}.json"
    html_path = folder / f"{task.name}.html"
    _write_atomic(json_path, json.dumps(doc, indent=1, allow_nan=False, default=str))
    _write_atomic(html_path, render_html(doc, run))
    write_index(folder)
    return [json_path, html_path]


def day_label(run: TaskRun) -> str:
    """``YYYY-MM-DD`` of a one-day interval, ``first_last`` of a longer one."""
    first = run.start.date()
    last = (run.end - timedelta(microseconds=1)).date()
    return first.isoformat() if first == last else f"{first}_{last}"


def write_index(folder: Path) -> Path:
    """``index.html`` of one day's folder: a row per task report found there."""
    rows = []
    for path in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        s = doc.get("series", {})
        rows.append(
            f"<tr><td><a href='{html.escape(path.stem)}.html'>{html.escape(path.stem)}</a></td>"
            f"<td class='{doc.get('status')}'>{doc.get('status')}</td><td>{s.get('total', 0)}</td>"
            f"<td>{s.get('success', 0)}</td><td>{s.get('skipped', 0)}</td><td>{s.get('failed', 0)}</td>"
            f"<td>{doc.get('rows_in', 0):,}</td><td>{doc.get('seconds', 0):.2f}</td></tr>"
        )
    body = (
        f"<h1>Pipeline reports — {html.escape(folder.parent.name)} — {html.escape(folder.name)}</h1>"
        "<table><tr><th>task</th><th>status</th><th>series</th><th>ok</th><th>skipped</th><th>failed</th>"
        f"<th>rows in</th><th>seconds</th></tr>{''.join(rows)}</table>"
    )
    path = folder / "index.html"
    _write_atomic(path, _page(f"{folder.parent.name} {folder.name}", body))
    return path


def render_html(doc: Mapping[str, Any], run: TaskRun) -> str:
    """The self-contained HTML page of one report document."""
    e = html.escape
    s = doc["series"]
    head = (
        f"<h1>{e(doc['task'])} — {e(doc['dataset'])}</h1>"
        f"<p>{e(doc['start'])} → {e(doc['end'])} · <b class='{doc['status']}'>{doc['status']}</b>"
        f" · {doc['attempts']} attempt(s) · {doc['seconds']:.2f} s · <code>{e(doc['function'])}</code></p>"
    )
    if doc["error"]:
        head += f"<p class='failed'>{e(str(doc['error']))}</p>"
    counts = (
        "<h2>Series</h2><table><tr><th>total</th><th>success</th><th>skipped</th><th>failed</th>"
        f"<th>rows in</th><th>rows out</th></tr><tr><td>{s['total']}</td><td>{s['success']}</td>"
        f"<td>{s['skipped']}</td><td>{s['failed']}</td><td>{doc['rows_in']:,}</td>"
        f"<td>{e(', '.join(f'{k}: {v:,}' for k, v in doc['rows_out'].items()))}</td></tr></table>"
    )
    figures = ""
    if doc["figures"]:
        rows = "".join(f"<tr><td>{e(k)}</td><td>{e(_fmt(v))}</td></tr>" for k, v in doc["figures"].items())
        figures = f"<h2>Figures</h2><table><tr><th>figure</th><th>over series</th></tr>{rows}</table>"
    plots = _plots(doc["per_series"], doc["skipped"])
    skipped = ""
    if doc["skipped"]:
        rows = "".join(f"<tr><td>{e(k)}</td><td>{v}</td></tr>" for k, v in doc["skipped"].items())
        skipped = f"<h2>Skipped</h2><table><tr><th>reason</th><th>series</th></tr>{rows}</table>"
    failures = ""
    if doc["failures"]:
        rows = "".join(
            f"<tr><td>{e(f['series_id'])}</td><td>{e(str(f['error']))}</td></tr>" for f in doc["failures"]
        )
        failures = (
            f"<h2 class='failed'>Failures</h2><table><tr><th>series</th><th>error</th></tr>{rows}</table>"
        )
    return _page(f"{doc['task']} {doc['start'][:10]}", head + counts + plots + figures + skipped + failures)


def _plots(per_series: Mapping[str, Mapping[str, Any]], skipped: Mapping[str, int]) -> str:
    """Inline SVG: a histogram per numeric figure (up to 6) and a bar chart of skip reasons."""
    values: dict[str, list[float]] = {}
    for report in per_series.values():
        for key, value in _flatten(report):
            if _is_number(value) and math.isfinite(float(value)):
                values.setdefault(key, []).append(float(value))
    svgs = [_histogram(key, vals) for key, vals in list(values.items())[:6] if len(vals) > 1]
    if skipped:
        svgs.append(_bars("skipped series by reason", list(skipped.items())))
    if not svgs:
        return ""
    return (
        "<h2>Plots</h2><div class='plots'>" + "".join(f"<div class='plot'>{s}</div>" for s in svgs) + "</div>"
    )


def _histogram(title: str, values: list[float], width: int = 320, height: int = 160) -> str:
    counts, edges = np.histogram(np.asarray(values), bins=min(20, max(5, len(values) // 5)))
    top = max(int(counts.max()), 1)
    bar_w = (width - 20) / len(counts)
    bars = "".join(
        f"<rect x='{10 + i * bar_w:.1f}' y='{height - 30 - c / top * (height - 50):.1f}' "
        f"width='{max(bar_w - 1, 1):.1f}' height='{c / top * (height - 50):.1f}' fill='#4a78b5'/>"
        for i, c in enumerate(counts.tolist())
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img'>"
        f"<title>{html.escape(title)}</title><text x='10' y='14' font-size='12'>{html.escape(title)}"
        f" (n={len(values)})</text>{bars}"
        f"<text x='10' y='{height - 12}' font-size='10'>{_short(edges[0])}</text>"
        f"<text x='{width - 10}' y='{height - 12}' font-size='10' text-anchor='end'>"
        f"{_short(edges[-1])}</text></svg>"
    )


def _bars(title: str, items: list[tuple[str, int]], width: int = 320) -> str:
    items = items[:8]
    top = max((n for _, n in items), default=1)
    height = 24 + 18 * len(items)
    rows = "".join(
        f"<rect x='150' y='{22 + i * 18}' width='{n / top * (width - 160):.1f}' height='14' fill='#d9a400'/>"
        f"<text x='146' y='{33 + i * 18}' font-size='10' text-anchor='end'>{html.escape(k[:28])}</text>"
        f"<text x='{154 + n / top * (width - 160):.1f}' y='{33 + i * 18}' font-size='10'>{n}</text>"
        for i, (k, n) in enumerate(items)
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img'>"
        f"<title>{html.escape(title)}</title><text x='10' y='14' font-size='12'>{html.escape(title)}</text>"
        f"{rows}</svg>"
    )


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>{body}</body></html>"
    )


def _flatten(report: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in report.items():
        if isinstance(value, Mapping):
            items.extend(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list | tuple | np.ndarray):
            items.append((f"{prefix}{key}.len", len(value)))
        else:
            items.append((f"{prefix}{key}", value))
    return items


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _fmt(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_short(v) if _is_number(v) else v}" for k, v in value.items())
    return str(value)


def _short(value: float) -> str:
    return f"{value:,.4g}"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
