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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all): {', '.join(BENCHES)}")
    parser.add_argument("--scale", type=float, default=1.0, help="data size factor (1.0 = the issue's size)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    console = Console()
    results: list[Result] = []
    for name in args.names or list(BENCHES):
        with console.status(f"running {name} ..."):
            module = importlib.import_module(BENCHES[name])
            with tempfile.TemporaryDirectory(prefix=f"sparkhu-bench-{name}-"):
                results.extend(module.run(args.scale))
    table = Table(title="sparkhu benchmarks (this machine)")
    for column in ("bench", "metric", "value", "unit", "target", "met", "detail"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for r in results:
        met = "" if r.met is None else ("yes" if r.met else "NO")
        table.add_row(r.bench, r.metric, f"{r.value:,.1f}", r.unit, r.target, met, r.detail)
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
