"""sparkhu's jobs as Airflow DAGs: ``sparkhu airflow dags --out DIR``.

Builders (:data:`DAG_BUILDERS`) turn the settings into :class:`~sparkhu.orchestrate.base.DagSpec`\\ s —
the daily cleaning DAG (:mod:`~sparkhu.orchestrate.pipeline`), training
(:mod:`~sparkhu.orchestrate.training`), retention (:mod:`~sparkhu.orchestrate.retention`) —
and :func:`~sparkhu.orchestrate.generate.generate` writes
each as an Airflow file (:mod:`~sparkhu.orchestrate.render`). Another job joins with one
registration: a function ``(BuildContext) -> list[DagSpec]`` registered here (or through an entry
point of the ``sparkhu.airflow_dags`` group), e.g. ``DAG_BUILDERS.register("study", study_dags)``.

>>> DAG_BUILDERS.keys()
['pipeline', 'retention', 'train']
"""

from __future__ import annotations

from sparkhu.orchestrate.base import AirflowTask, BuildContext, DagBuilder, DagSpec
from sparkhu.orchestrate.pipeline import pipeline_dags
from sparkhu.orchestrate.retention import retention_dags
from sparkhu.orchestrate.training import training_dags
from sparkhu.plugins import Registry

__all__ = ["DAG_BUILDERS", "AirflowTask", "BuildContext", "DagBuilder", "DagSpec"]

DAG_BUILDERS: Registry[DagBuilder] = Registry("Airflow DAG builder", group="sparkhu.airflow_dags")
DAG_BUILDERS.register("pipeline", pipeline_dags)
DAG_BUILDERS.register("train", training_dags)
DAG_BUILDERS.register("retention", retention_dags)
