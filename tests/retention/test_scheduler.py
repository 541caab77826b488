"""Retention in ``sparkhu up``: the scheduler is a platform service; its settings are validated."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sparkhu.app.platform import Platform
from sparkhu.app.retention import add_retention_scheduler, retention_context
from sparkhu.app.runtime import Runtime
from sparkhu.config import Settings
from sparkhu.errors import ConfigError


def test_the_scheduler_runs_as_a_service_and_stops_with_the_platform(tmp_path: Path) -> None:
    settings = Settings.load(
        toml_path=None,
        env={},
        overrides={"home": str(tmp_path), "retention.schedule": "03:30", "retention.timezone": "Asia/Seoul"},
    )
    with Runtime(settings) as runtime:
        platform = Platform()
        add_retention_scheduler(platform, runtime, check_every_s=0.05)
        assert [s.name for s in platform.services] == ["retention scheduler"]
        platform.start()
        time.sleep(0.2)
        started = time.perf_counter()
        platform.stop()
        assert time.perf_counter() - started < 5 and platform.failures() == []
        ctx = retention_context(runtime)
        assert ctx.archive == str(tmp_path / "archive") and ctx.registry is None


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("retention.schedule", "25:00", "retention.schedule"),
        ("retention.timezone", "Mars/Olympus", "retention.timezone"),
        ("retention.floor_days", "-1", "retention.floor_days"),
        ("retention.soft_delete_days", "x", "retention.soft_delete_days"),
    ],
)
def test_bad_retention_settings_name_the_key(tmp_path: Path, key: str, value: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        Settings.load(toml_path=None, env={}, overrides={"home": str(tmp_path), key: value})


def test_a_scheduled_pass_skips_and_logs_while_another_pass_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sparkhu.app.retention import scheduled_pass
    from sparkhu.retention.apply import PASS_LEASE

    settings = Settings.load(toml_path=None, env={}, overrides={"home": str(tmp_path)})
    counts = {"passes": 0, "rows": 0, "bytes": 0, "failed": 0, "skipped": 0}
    with Runtime(settings) as runtime:
        info = {"actor": "cli", "pid": 77, "host": "h"}
        taken, _ = runtime.catalog.acquire_lease(PASS_LEASE, "cli-holder", 60, info)
        assert taken is not None
        with caplog.at_level("WARNING", logger="sparkhu.app.retention"):
            scheduled_pass(runtime, counts)
        assert counts["skipped"] == 1 and counts["passes"] == 0
        assert (
            "retention pass skipped: a retention pass is already running on this home (cli, pid 77"
            in caplog.text
        )
        runtime.catalog.release_lease(PASS_LEASE, taken)
        scheduled_pass(runtime, counts)
        assert counts["passes"] == 1 and counts["skipped"] == 1
