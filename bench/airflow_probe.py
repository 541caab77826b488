"""Runs INSIDE Airflow's virtualenv (it imports Airflow, never sparkhu): parse generated DAG files
and run one with ``dag.test()``; prints one JSON line last. Used by tests/orchestrate and
bench/airflow_dags.py through a subprocess (the two environments' dependencies are kept apart).

    python airflow_probe.py parse DIR
    python airflow_probe.py test DIR DAG_ID LOGICAL_DATE   # e.g. 2024-01-03T00:10:00+00:00

The caller sets AIRFLOW_HOME (a migrated SQLite metadata database) and AIRFLOW__CORE__* variables.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path


def parse(folder: Path) -> dict:
    began = time.perf_counter()
    from airflow.dag_processing.dagbag import DagBag

    import_s = time.perf_counter() - began
    files = {}
    for path in sorted(folder.glob("*.py")):
        start = time.perf_counter()
        bag = DagBag(dag_folder=str(path))
        seconds = time.perf_counter() - start
        dags = {}
        for dag_id, dag in bag.dags.items():
            dags[dag_id] = {
                "tasks": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},
                "commands": {
                    t.task_id: getattr(t, "bash_command", None) or repr(getattr(t, "op_args", ""))
                    for t in dag.tasks
                },
                "schedule": str(getattr(dag.timetable, "summary", dag.timetable)),
                "catchup": dag.catchup,
                "start_date": dag.start_date.isoformat() if dag.start_date else None,
                "retries": dag.default_args.get("retries"),
                "execution_timeout_s": dag.default_args["execution_timeout"].total_seconds(),
                "deadline": [
                    [type(d.reference).__name__, d.interval.total_seconds(), str(d.callback.path)]
                    for d in (dag.deadline or [])
                ],
            }
        files[path.name] = {
            "seconds": seconds,
            "errors": {k: str(v) for k, v in bag.import_errors.items()},
            "dags": dags,
        }
    imported = sorted(m for m in sys.modules if m == "sparkhu" or m.startswith("sparkhu."))
    return {"import_s": import_s, "files": files, "sparkhu_modules": imported}


def test(folder: Path, dag_id: str, logical_date: str) -> dict:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(folder))
    if bag.import_errors:
        return {"errors": {k: str(v) for k, v in bag.import_errors.items()}}
    dag = bag.get_dag(dag_id)
    start = time.perf_counter()
    run = dag.test(logical_date=datetime.fromisoformat(logical_date))
    seconds = time.perf_counter() - start
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    return {
        "state": str(run.state),
        "seconds": seconds,
        "tasks": states,
        "data_interval": [str(run.data_interval_start), str(run.data_interval_end)],
    }


def main(argv: list[str]) -> None:
    command, folder, *rest = argv
    result = parse(Path(folder)) if command == "parse" else test(Path(folder), *rest)
    sys.stdout.flush()
    print("\nPROBE " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
