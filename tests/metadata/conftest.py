"""Fixtures of the metadata tests: the demo's home, prepared once (history ingested and cleaned, one
series trained on a feature view), and the OpenLineage schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sparkhu.app import demo
from sparkhu.app.runtime import Runtime
from sparkhu.cli.main import run
from sparkhu.config import DemoSettings, Settings

SCHEMA = Path(__file__).with_name("OpenLineage.json")
"""The OpenLineage RunEvent schema (the spec's ``OpenLineage.json``, Apache-2.0), vendored: no
PyPI package ships it."""
SERIES = "ampds2/electricity/WHE.P"


@dataclass
class DemoHome:
    """A prepared demo home: its settings and the series it made."""

    settings: Settings
    series: list[str]
    events: Path
    """The OpenLineage events its job runs sent (ingest, pipeline task-days, training)."""

    def runtime(self) -> Runtime:
        return Runtime(self.settings)


def sparkhu(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit status, stdout, stderr)."""
    code = 0
    try:
        run([*argv])
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoHome]:
    """The demo's history (2 days, 10 meters) ingested and cleaned by the daily DAG; the whole-house
    meter trained (one cheap model) on the feature view ``house``, through the application layer;
    the OpenLineage events of these job runs sent to a file."""
    from sparkhu.app.training import train
    from sparkhu.forecast.train import TrainConfig
    from sparkhu.metadata.features import FeatureView, apply_view

    home = tmp_path_factory.mktemp("demo")
    events = home / "jobs.jsonl"  # every job run's OpenLineage events ([metadata] openlineage)
    overrides = {"home": str(home), "metadata": {"openlineage": str(events)}}
    settings = demo.demo_settings(Settings.load(toml_path=None, env={}, overrides=overrides))
    demo.reset_home(settings)
    with Runtime(settings) as runtime:
        plan = demo.prepare(runtime, DemoSettings(days=2, meters=10, replay_days=0.05))
        view = FeatureView(name="house", dataset=demo.DATASET, series=[SERIES], window=720)
        apply_view(runtime.catalog, view)
        config = TrainConfig(
            horizon=10, season_length=60, portfolio=("seasonal_naive",), windows=1, plot=False
        )
        train(runtime, "", config, feature_view="house")
    yield DemoHome(settings, plan.series, events)


@pytest.fixture(scope="session")
def run_event_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA.read_text())
    return schema
