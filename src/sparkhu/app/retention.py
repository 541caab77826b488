"""Retention in the application: its context from a :class:`Runtime`, and its scheduled run in ``up``.

The scheduler fires at ``[retention] schedule`` (``HH:MM`` or cron, in ``[retention] timezone``) and
runs one pass (:func:`sparkhu.retention.apply.run`: finish an interrupted run, then plan and apply).
A failing pass is logged and audited; it does not stop the platform (data is only ever kept).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sparkhu.app.platform import Platform
from sparkhu.app.runtime import Runtime
from sparkhu.config import schedule_trigger
from sparkhu.errors import ConfigError, SparkhuError
from sparkhu.retention.context import RetentionContext

log = logging.getLogger(__name__)


def retention_context(runtime: Runtime, *, registry: bool | None = None) -> RetentionContext:
    """The retention context of ``runtime``'s backends. The registry (MLflow) is opened only when a
    policy governs it (``registry=None``), or as asked."""
    from sparkhu.retention.policies import policies

    settings = runtime.settings
    ctx = RetentionContext(
        lake=runtime.lake,
        catalog=runtime.catalog,
        settings=settings.retention,
        archive=settings.retention.archive or str(Path(settings.home) / "archive"),
        predictions=runtime.predictions,
        bus=lambda: runtime.bus,
        reports=str(Path(settings.home) / "reports"),
    )
    if registry is None:
        registry = any(p.target == "registry" for p in policies(ctx))
    if registry:
        ctx.registry = runtime.registry
    return ctx


def scheduled_pass(runtime: Runtime, counts: dict[str, int]) -> None:
    """One pass of the scheduler, counted in ``counts``: skipped (and logged) while another pass
    holds the home's lease, logged when it fails; never raises a SparkhuError."""
    from sparkhu.retention.apply import RetentionBusy, run

    try:
        for result in run(retention_context(runtime), actor="scheduler"):
            counts["rows"] += result.rows
            counts["bytes"] += result.bytes
        counts["passes"] += 1
    except RetentionBusy as exc:  # a CLI `apply` (or another host) is at it: the next firing retries
        counts["skipped"] += 1
        log.warning("retention pass skipped: %s", exc)
    except SparkhuError as exc:
        counts["failed"] += 1
        log.error("retention pass failed: %s", exc)


def add_retention_scheduler(platform: Platform, runtime: Runtime, *, check_every_s: float = 60.0) -> None:
    """Run a retention pass at each firing of ``[retention] schedule``."""
    settings = runtime.settings.retention
    try:
        zone = ZoneInfo(settings.timezone)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"[retention] timezone: unknown time zone {settings.timezone!r}") from exc
    trigger = schedule_trigger(settings.schedule, zone)
    counts = {"passes": 0, "rows": 0, "bytes": 0, "failed": 0, "skipped": 0}

    def once() -> None:
        scheduled_pass(runtime, counts)

    def loop(stop: threading.Event) -> None:
        while not stop.is_set():
            now = datetime.now(zone)
            due = trigger.get_next_fire_time(None, now)
            if stop.wait(min((due - now).total_seconds(), check_every_s)):
                break
            if datetime.now(zone) >= due:
                once()

    platform.add("retention scheduler", loop, figures=lambda: {k: float(v) for k, v in counts.items()})
