"""Retention as an Airflow DAG: one ``sparkhu retention apply`` a day, when retention has policies.

The pass is the one ``sparkhu up`` schedules (finish an interrupted run, then plan and apply), so
Airflow's retries are safe: an applied plan is not applied twice, an interrupted one is completed.
Its schedule and time zone are ``[retention] schedule`` and ``timezone`` (the original ran at
00:00 local time). Retention acts on the data as it is when it runs, not on a past day, so the
DAG never catches up.

>>> retention_task().argv
('retention', 'apply')
"""

from __future__ import annotations

from datetime import date

from sparkhu.orchestrate.base import AirflowTask, BuildContext, DagSpec, cron_of, dag_id, run_settings


def retention_task() -> AirflowTask:
    """The one task of the retention DAG."""
    return AirflowTask("retention", ("retention", "apply"), doc="plan and apply the retention policies")


def retention_dags(ctx: BuildContext) -> list[DagSpec]:
    """The retention DAG, or none when no policy is configured (in sparkhu.toml or the catalog)."""
    settings = ctx.settings
    if not settings.retention.policies and not ctx.runtime.catalog.policies("retention"):
        return []
    start = settings.airflow.start_date
    return [
        DagSpec(
            dag_id(settings.airflow.dag_prefix, "retention"),
            cron_of(settings.retention.schedule),
            date.fromisoformat(start) if start else date.today(),
            (retention_task(),),
            description="sparkhu retention: archive, downsample and delete by policy",
            tags=("sparkhu", "retention"),
            catchup=False,
            **run_settings(settings),
            timezone=settings.retention.timezone,
        )
    ]
