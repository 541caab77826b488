"""Training as Airflow DAGs: one per training policy of the catalog, else one per dataset.

Each runs ``sparkhu train`` on the history before its run's day (``--end {until}``), so a re-run
of the same day trains on the same data. Horizon and season come from ``[forecast]``, the schedule
from ``[airflow] train_schedule`` unless the policy names its own. A policy (``kind="training"``
in the catalog) is read with :class:`TrainingPolicy`; fields it does not know are left to the
controller that owns them.

>>> TrainingPolicy.model_validate({"dataset": "a_b", "models": "ses,naive", "owner": "x"}).argv()
('train', '--dataset', 'a_b', '--models', 'ses,naive', '--end', '{until}')
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sparkhu.config import check_schedule, validation_message
from sparkhu.errors import ConfigError
from sparkhu.orchestrate.base import AirflowTask, BuildContext, DagSpec, cron_of, dag_id, run_settings
from sparkhu.orchestrate.pipeline import start_day


class TrainingPolicy(BaseModel):
    """The fields of a training policy the generated DAG uses."""

    model_config = ConfigDict(extra="ignore")

    dataset: str | None = None
    prefix: str = ""
    models: str | list[str] = ""
    windows: int | None = Field(default=None, ge=1)
    schedule: str | None = None

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return None if value is None else check_schedule(value)

    def argv(self, dataset: str | None = None) -> tuple[str, ...]:
        """The ``sparkhu train`` arguments of this policy."""
        args = ["train"]
        if self.prefix:
            args.append(self.prefix)
        args += ["--dataset", dataset or self.dataset or ""]
        models = ",".join(self.models) if isinstance(self.models, list) else self.models
        if models:
            args += ["--models", models]
        if self.windows is not None:
            args += ["--windows", str(self.windows)]
        return (*args, "--end", "{until}")


def training_dags(ctx: BuildContext) -> list[DagSpec]:
    """A training DAG per training policy, or per dataset when there is none."""
    settings = ctx.settings
    found = ctx.runtime.catalog.policies("training")
    named: list[tuple[str, TrainingPolicy]] = []
    for row in found:
        try:
            policy = TrainingPolicy.model_validate(row["body"])
        except ValidationError as exc:
            raise ConfigError(f"training policy {row['name']!r}: {validation_message(exc)}") from exc
        named.append((row["name"], policy))
    if not named:
        named = [(dataset, TrainingPolicy(dataset=dataset)) for dataset in ctx.datasets]
    specs = []
    for name, policy in named:
        dataset = policy.dataset or (ctx.datasets[0] if len(ctx.datasets) == 1 else None)
        if dataset is None:
            raise ConfigError(f"training policy {name!r} names no dataset; add one (several are configured)")
        specs.append(
            DagSpec(
                dag_id(settings.airflow.dag_prefix, name, "train"),
                cron_of(policy.schedule or settings.airflow.train_schedule),
                start_day(ctx, dataset),
                (AirflowTask("train", policy.argv(dataset), doc="back-test, register champions, forecast"),),
                description=f"sparkhu training of {dataset} ({'policy ' + name if found else 'default'})",
                tags=("sparkhu", "train", dataset),
                catchup=False,  # only the newest history matters for a model
                **run_settings(settings),
            )
        )
    return specs
