"""GraphQL types of Spark resource studies (read from the lake), merged into the gateway's Query.

>>> import strawberry
>>> sdl = str(strawberry.Schema(SparkStudyQuery))
>>> "sparkStudies(limit: Int! = 20, id: String = null): [SparkStudy!]!" in sdl
True
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import strawberry

from sparkhu.gateway.types import Info, call
from sparkhu.sparkstudy.report import read_studies


@strawberry.type(description="One setting's run in a study (units in the names: s, MB, %).")
class SparkRun:
    setting: str
    executor_cores: int
    executor_memory_mb: int
    executor_instances: int
    dynamic_allocation: bool
    status: str
    reason: str
    wall_s: float | None
    job_s: float | None
    executors_max: int | None
    pending_max: int | None
    executor_s: float | None
    vcpu_s: float | None
    cpu_avg_pct: float | None
    cpu_max_pct: float | None
    mem_avg_mb: float | None
    mem_max_mb: float | None
    task_s: float | None
    gc_s: float | None
    shuffle_read_mb: float | None
    shuffle_write_mb: float | None
    cost: float | None
    time_x_cost: float | None
    counts: strawberry.scalars.JSON
    app_id: str


@strawberry.type(description="Executors running and pending at a time of a run.")
class ExecutorPoint:
    t: float
    running: int
    pending: int


@strawberry.type
class SparkTimeline:
    setting: str
    points: list[ExecutorPoint]


@strawberry.type(description="A resource study: one job under a grid of settings.")
class SparkStudy:
    id: str
    job: str
    form: str
    input: str
    started: datetime
    runs: list[SparkRun]
    timelines: list[SparkTimeline]


def _study(data: dict[str, Any]) -> SparkStudy:
    fields = [name for name in SparkRun.__annotations__ if name not in ("reason", "app_id", "counts")]
    runs = [
        SparkRun(
            **{name: run.get(name) for name in fields},
            reason=run.get("reason") or "",
            app_id=run.get("app_id") or "",
            counts=json.loads(run.get("counts") or "{}"),
        )
        for run in data["runs"]
        if run.get("setting") is not None
    ]
    for run in runs:  # columns read back from Parquet may hold NaN for missing values
        for name, value in vars(run).items():
            if isinstance(value, float) and value != value:
                setattr(run, name, None)
    timelines = [
        SparkTimeline(
            setting=name,
            points=[ExecutorPoint(t=p["t"], running=p["running"], pending=p["pending"]) for p in points],
        )
        for name, points in sorted(data["timelines"].items())
    ]
    return SparkStudy(
        id=data["id"], job=data["job"], form=data["form"], input=data["input"], started=data["started"],
        runs=runs, timelines=timelines,
    )  # fmt: skip


@strawberry.type
class SparkStudyQuery:
    @strawberry.field(description="Spark resource studies, newest first (or the one with this id).")
    async def spark_studies(self, info: Info, limit: int = 20, id: str | None = None) -> list[SparkStudy]:
        studies = await call(read_studies, info.context.services.lake)
        if id is not None:
            studies = [s for s in studies if s["id"] == id]
        return [_study(s) for s in studies[: max(limit, 0)]]
