"""Run the benchmarks and print a table: ``python -m bench [--scale F] [NAME ...]``."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import BENCHES, Result


def _row(r: Result) -> tuple[str, ...]:
    met = "" if r.met is None else ("yes" if r.met else "NO")
    ratio = "" if r.ratio is None else f"{r.ratio:.2f} ×"
    return (r.bench, r.metric, f"{r.value:,.1f}", r.unit, r.target, met, r.peer, ratio, r.detail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all): {', '.join(BENCHES)}")
    parser.add_argument("--scale", type=float, default=1.0, help="data size factor (1.0 = the issue's size)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (for notes)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    # Wide enough that a table piped to a file or CI log keeps one line per figure.
    console = Console(width=None if sys.stdout.isatty() else 200)
    results: list[Result] = []
    for name in args.names or list(BENCHES):
        with console.status(f"running {name} ..."):
            module = importlib.import_module(BENCHES[name])
            with tempfile.TemporaryDirectory(prefix=f"sparkhu-bench-{name}-"):
                results.extend(module.run(args.scale))
    table = Table(title="sparkhu benchmarks (this machine)")
    columns = ("bench", "metric", "value", "unit", "target", "met", "peer", "ratio", "detail")
    for column in columns:
        table.add_column(column, justify="right" if column in ("value", "ratio") else "left")
    rows = [_row(r) for r in results]
    for row in rows:
        table.add_row(*row)
    if args.markdown:
        print("| " + " | ".join(columns) + " |\n|---|---|---:|---|---|---|---|---:|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        console.print(table)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
