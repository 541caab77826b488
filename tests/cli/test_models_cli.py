"""`sparkhu train`, `predict` and `models` on a real home; bad input is one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sparkhu.cli.main import run
from sparkhu.series import points
from sparkhu.storage.lake import Lake

T0 = 1_700_000_000 * 1_000_000
MINUTE = 60_000_000


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
    home = tmp_path_factory.mktemp("home")
    n = 600
    ts = T0 + np.arange(n) * MINUTE
    wave = 100 + 20 * np.sin(2 * np.pi * np.arange(n) / 60) + np.random.default_rng(3).normal(0, 1, n)
    lake = Lake((home / "lake").as_uri())
    lake.write("raw", "ampds2_electricity", points("ampds2/electricity/WHE.P", ts, wave))
    lake.write("raw", "ampds2_electricity", points("ampds2/electricity/FRE.P", ts, np.full(n, 7.0)))
    return home


def test_train_predict_models(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    code, out, err = sparkhu(
        capsys,
        "--home",
        str(home),
        "train",
        "ampds2/",
        "--horizon",
        "5",
        "--windows",
        "2",
        "--season-length",
        "60",
    )
    assert code == 0, err
    assert "WHE.P" in out and "constant series" in out and "v1" in out, out
    code, out, err = sparkhu(
        capsys, "--home", str(home), "predict", "ampds2/electricity/WHE.P", "--horizon", "3"
    )
    assert code == 0, err
    assert out.count("2023-11-1") == 3 and "@v1" in out
    code, out, err = sparkhu(capsys, "--home", str(home), "models", "--series", "ampds2/electricity/WHE.P")
    assert code == 0, err
    assert "sparkhu.ampds2.electricity.WHE.P" in out and "champion" in out
    assert not (Path.cwd() / "mlruns").exists() and (home / "mlartifacts").is_dir()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--models", "ses,prophet"], "unknown model(s) 'prophet' in the portfolio"),
        (["train", "nope/"], "no series of raw/ampds2_electricity starts with 'nope/'"),
        (["train", "--start", "yesterday"], "--start: 'yesterday' is not an ISO 8601 timestamp"),
        (["predict", "ampds2/electricity/NOPE.P"], "no model is registered as 'champion'; train one"),
        (["predict", "not-a-series"], "series id 'not-a-series' is not source/measurement/field"),
        (["models", "--series", "a/b"], "'a/b' is neither a series id"),
    ],
)
def test_bad_input_is_one_line(
    capsys: pytest.CaptureFixture[str], home: Path, argv: list[str], message: str
) -> None:
    code, _, err = sparkhu(capsys, "--home", str(home), *argv)
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_unreachable_tracking_uri(
    capsys: pytest.CaptureFixture[str], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARKHU_MLFLOW__TRACKING_URI", "http://127.0.0.1:9")
    code, _, err = sparkhu(capsys, "--home", str(home), "models")
    assert code == 2
    assert err.strip().splitlines() == [
        "error: cannot reach http://127.0.0.1:9: no MLflow tracking server answers "
        "([Errno 111] Connection refused); start it or fix the URI"
    ]
