"""`sparkhu scores` and `sparkhu drift` on a real home; bad input is one line and exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sparkhu.app.runtime import Runtime
from sparkhu.cli.main import run
from sparkhu.config import Settings
from sparkhu.online.scorer import OnlineScorer
from sparkhu.series import points
from sparkhu.storage.catalog import SeriesInfo
from sparkhu.storage.predictions import FORECAST_SCHEMA, Checkpoint

SID = "ampds2/electricity/WHE.P"
T0 = 1_700_000_000 * 1_000_000
MINUTE = 60_000_000
SHIFT_AT = 150


def sparkhu(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = 0
    try:
        run([*argv])
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose catalog holds one series, a forecast scored against it and a level shift's event."""
    home = tmp_path_factory.mktemp("home")
    with Runtime(Settings.load(overrides={"home": str(home)})) as runtime:
        runtime.catalog.upsert_series(SeriesInfo.of(SID, unit="W", period_s=60.0))
        steps = np.arange(1, 4)
        runtime.predictions.write(
            pa.Table.from_pydict(
                {
                    "series_id": [SID] * 3,
                    "origin_ts": T0 + 9 * MINUTE + 0 * steps,
                    "target_ts": T0 + (9 + steps) * MINUTE,
                    "step": steps.astype("int32"),
                    "value": [100.0, 101.0, 102.0],
                    "lower": [99.0, 99.0, 99.0],
                    "upper": [101.0, 101.0, 101.0],
                    "model": ["ses@v2"] * 3,
                },
                schema=FORECAST_SCHEMA,
            )
        )
        values = 100.0 + np.random.default_rng(2).normal(0.0, 1.0, 200)
        values[SHIFT_AT:] += 20.0
        scorer = OnlineScorer(runtime.catalog, "online/test", window=30)
        scorer.observe(points(SID, T0 + np.arange(200) * MINUTE, values))
        runtime.predictions.write(
            FORECAST_SCHEMA.empty_table(), checkpoint=Checkpoint("online/test", {}, scorer.save)
        )
    return home


def test_scores_as_a_table_rows_and_json(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    code, out, err = sparkhu(capsys, "--home", str(home), "scores", SID)
    assert code == 0, err
    assert "ses@v2" in out and "MASE" in out and out.count("ses@v2") == 3, out  # one row per step
    code, out, err = sparkhu(capsys, "--home", str(home), "scores", SID, "--json", "--step", "1")
    assert code == 0, err
    (one,) = json.loads(out)
    assert one["model"] == "ses@v2" and one["count"] == 1 and one["coverage"] in (0.0, 1.0)
    code, out, err = sparkhu(capsys, "--home", str(home), "scores", SID, "--rows", "5", "--json")
    assert code == 0, err
    assert [r["step"] for r in json.loads(out)] == [1, 2, 3]


def test_drift_lists_the_level_shift(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    code, out, err = sparkhu(capsys, "--home", str(home), "drift", "--json")
    assert code == 0, err
    events = json.loads(out)
    level = [e for e in events if e["kind"] == "level"]
    assert level and level[0]["series_id"] == SID and level[0]["statistic"] > level[0]["threshold"]
    code, out, err = sparkhu(capsys, "--home", str(home), "drift", SID, "--kind", "level")
    assert code == 0, err
    assert "level" in out and "page_hinkley" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["scores", "not-a-series"], "series_id: 'not-a-series' is not a series id"),
        (["scores", "nowhere/to/be"], "series 'nowhere/to/be' is not in the catalog"),
        (["scores", SID, "--since", "yesterday"], "--since: 'yesterday' is not an ISO 8601 timestamp"),
        (
            ["scores", SID, "--since", "2024-02-01", "--until", "2024-01-01"],
            "since: 2024-02-01T00:00:00+00:00 is",
        ),
        (["scores", SID, "--step", "0"], "step: must be a horizon step >= 1, got 0"),
        (["scores", SID, "--rows", "-3"], "limit: must be an integer in 1..100000, got -3"),
        (["drift", "a/b"], "series_id: 'a/b' is not a series id"),
        (["drift", "--kind", "mood"], "kind: unknown kind 'mood'"),
        (["drift", "--limit", "0"], "limit: must be an integer in 1..10000, got 0"),
        (["drift", "--since", "2024-13-01"], "--since: '2024-13-01' is not an ISO 8601 timestamp"),
    ],
)
def test_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], home: Path, argv, needle) -> None:
    code, out, err = sparkhu(capsys, "--home", str(home), *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and needle in err, err
