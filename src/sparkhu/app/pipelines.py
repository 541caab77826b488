"""The daily cleaning DAG bound to a runtime: what ``sparkhu pipeline``, the scheduler and the demo run."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sparkhu.app.runtime import Runtime

if TYPE_CHECKING:
    from sparkhu.pipeline.runner import PipelineRunner


def daily(
    runtime: Runtime,
    dataset: str | None = None,
    *,
    on_progress: Callable[[Any], None] | None = None,
    days_per_run: int = 1,
) -> PipelineRunner:
    """The runner of the 13-task DAG over ``dataset`` (see :meth:`Runtime.resolve_dataset`), with
    ``[pipeline]`` settings, reports under ``<home>/reports`` and the runtime's engine."""
    from sparkhu.pipeline.daily import daily_runner

    settings = runtime.settings
    return daily_runner(
        runtime.lake,
        runtime.catalog,
        runtime.engine,
        runtime.resolve_dataset(dataset),
        settings=settings.pipeline,
        home=settings.home,
        on_progress=on_progress,
        days_per_run=days_per_run,
    )
