"""Run the benchmarks and print a table: ``python -m bench [--scale F] [NAME ...]``.

``--history`` also writes the run as JSON to ``bench/history/<UTC time>.json`` (``--json PATH``
writes it where told); ``--readme`` rewrites the table between the markers of ``README.md``
(:data:`BEGIN`, :data:`END`), from this run or, with ``--from FILE``, from a saved run without
running anything: ``python -m bench --readme --from bench/history/<run>.json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import BENCHES, Result

COLUMNS = ("bench", "metric", "value", "unit", "target", "met", "peer", "ratio", "detail")
HISTORY = Path(__file__).parent / "history"
README = Path(__file__).parent.parent / "README.md"
BEGIN = "<!-- bench:begin (python -m bench --readme) -->"
END = "<!-- bench:end -->"


def _row(r: Result) -> tuple[str, ...]:
    met = "" if r.met is None else ("yes" if r.met else "NO")
    ratio = "—" if r.ratio is None else f"{r.ratio:.2f} ×"
    peer = r.peer or "—"
    return (r.bench, r.metric, f"{r.value:,.1f}", r.unit, r.target, met, peer, ratio, r.detail)


def markdown(results: list[Result]) -> str:
    """The results as a Markdown table (``ratio`` > 1: sparkhu is faster than its peer)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---|---|---:|---|---|---|---|---:|---|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in _row(r)) + " |" for r in results]
    return "\n".join(lines)


def run_info(scale: float) -> dict[str, Any]:
    """When, where and on what code a run was measured."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        commit = ""
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "scale": scale,
        "commit": commit,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
    }


def load(path: Path) -> tuple[dict[str, Any], list[Result]]:
    """A run saved by ``--json``/``--history`` (a bare list of results, as older runs were, too)."""
    data = json.loads(path.read_text())
    if isinstance(data, list):
        data = {"run": {}, "results": data}
    return data.get("run", {}), [Result(**row) for row in data["results"]]


def rewrite_readme(results: list[Result], info: dict[str, Any], readme: Path = README) -> None:
    """Replace the block between :data:`BEGIN` and :data:`END` of ``readme`` with the table."""
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: no {BEGIN} ... {END} block to rewrite; add the two markers first")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    measured = ", ".join(f"{k} {v}" for k, v in info.items() if v != "")
    block = (
        f"{BEGIN}\n_Measured: {measured}. ratio = sparkhu's speed / the peer's (> 1: sparkhu faster)._\n\n"
    )
    readme.write_text(head + block + markdown(results) + "\n" + END + tail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all): {', '.join(BENCHES)}")
    parser.add_argument("--scale", type=float, default=1.0, help="data size factor (1.0 = the issue's size)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--history", action="store_true", help="also write them to bench/history/<time>.json")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (for notes)")
    parser.add_argument("--readme", action="store_true", help="rewrite the benchmark table of README.md")
    parser.add_argument(
        "--from", dest="source", type=Path, help="take the results of a saved run, run nothing"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    # Wide enough that a table piped to a file or CI log keeps one line per figure.
    console = Console(width=None if sys.stdout.isatty() else 200)
    if args.source is not None:
        if not args.source.is_file():
            parser.error(f"--from {args.source}: no such file")
        info, results = load(args.source)
    else:
        info, results = run_info(args.scale), []
        for name in args.names or list(BENCHES):
            with console.status(f"running {name} ..."):
                module = importlib.import_module(BENCHES[name])
                with tempfile.TemporaryDirectory(prefix=f"sparkhu-bench-{name}-"):
                    results.extend(module.run(args.scale))
    if args.markdown:
        print(markdown(results))
    else:
        table = Table(title="sparkhu benchmarks (this machine)")
        for column in COLUMNS:
            table.add_column(column, justify="right" if column in ("value", "ratio") else "left")
        for row in map(_row, results):
            table.add_row(*row)
        console.print(table)
    saved = {"run": info, "results": [r.__dict__ for r in results]}
    targets = [args.json] if args.json else []
    if args.history and args.source is None:
        HISTORY.mkdir(exist_ok=True)
        targets.append(HISTORY / f"{datetime.now(UTC):%Y-%m-%dT%H%M%SZ}.json")
    for target in targets:
        target.write_text(json.dumps(saved, indent=2) + "\n")
        print(f"saved to {target}", file=sys.stderr)
    if args.readme:
        rewrite_readme(results, info)
        print(f"rewrote the benchmark table of {README}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
