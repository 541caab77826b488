"""The controller's doors: policies in sparkhu.toml and the CLI; bad input is one clear line.

The GraphQL door is tested in ``tests/gateway/test_control.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sparkhu.cli.main import run
from sparkhu.config import Settings
from sparkhu.errors import ConfigError
from sparkhu.forecast.registry import ModelRegistry
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake

T0 = 1_700_000_000 * 1_000_000
MINUTE = 60_000_000


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            'name = "p"\ngate = {margin = 1.5}',
            r"policies\.0\.gate\.margin: Input should be less than 1 \(got 1\.5\)",
        ),
        ('name = "p"\nwindow = "-3d"', r"policies\.0\.window: expected a positive span such as 15min"),
        ('name = "p"\nschedule = "every day"', r"policies\.0\.schedule: expected HH:MM \(UTC\) or a cron"),
        ('name = "p"\nengine = "dask"', r"policies\.0\.engine: Input should be 'local' or 'spark'"),
        ('name = "p"\nbudget_per_hour = 0', r"policies\.0\.budget_per_hour: Input should be greater than"),
        ('name = "p"\nseries = "/a b"', r"policies\.0\.series: expected a glob over series ids"),
        ('name = "p"\nretrain = true', r"policies\.0\.retrain: Extra inputs are not permitted"),
    ],
)
def test_an_impossible_policy_in_the_settings_file_is_one_error_naming_the_field(
    tmp_path: Path, toml: str, message: str
) -> None:
    path = tmp_path / "sparkhu.toml"
    path.write_text(f"[[policies]]\n{toml}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: {message}"):
        Settings.load(toml_path=path, env={})


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
    ts = T0 + np.arange(120) * MINUTE
    values = 50 + np.random.default_rng(5).normal(0, 1, 120)
    Lake((home / "lake").as_uri()).write("raw", "ctl_cli", points("ctl/cli/P", ts, values))
    return home


def test_policies_and_models_by_command_line(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    cli = ("--home", str(home), "--config", str(home / "none.toml"))
    (home / "none.toml").write_text("")
    code, _, err = sparkhu(capsys, *cli, "policies", "set", "gated", "--series", "ctl/*", "--margin", "1.5")
    assert code == 2 and err.strip() == "error: policy: gate.margin: Input should be less than 1 (got 1.5)"
    code, _, err = sparkhu(capsys, *cli, "policies", "set", "gated", "--json", "{oops")
    assert code == 2 and err.startswith("error: --json: not a JSON object")
    code, _, err = sparkhu(capsys, *cli, "policies", "set", "bad name!")
    assert code == 2 and err.startswith("error: policy: name: String should match pattern")
    code, out, _ = sparkhu(
        capsys, *cli, "policies", "set", "gated", "--series", "ctl/*", "--gate-training", "--min-points", "5"
    )
    assert code == 0 and "policy 'gated' saved" in out
    code, out, _ = sparkhu(capsys, *cli, "policies", "list")
    assert code == 0 and " gated " in out and " ctl/* " in out and "1 policy" in out
    # train under a policy that gates training: registered as challenger, handed to the controller
    train = ("train", "--dataset", "ctl_cli", "--models", "ses", "--windows", "1", "--season-length", "2")
    code, out, err = sparkhu(capsys, *cli, *train, "--horizon", "3")
    assert code == 0, err
    registry = ModelRegistry.from_settings(
        Settings.load(toml_path=None, env={}, overrides={"home": str(home)})
    )
    assert registry.aliases("ctl/cli/P") == {"challenger": 1}
    with Catalog(f"sqlite:///{home / 'catalog.db'}") as catalog:
        (cycle,) = catalog.actions(series_id="ctl/cli/P")
    assert (cycle["state"], cycle["trigger"], cycle["challenger_version"]) == ("shadowing", "train", 1)
    # a promotion by hand, the history, one step back
    code, out, _ = sparkhu(capsys, *cli, "models", "promote", "ctl/cli/P", "1", "--reason", "looks right")
    assert code == 0 and "version 1 is champion" in out
    code, _, err = sparkhu(capsys, *cli, "models", "promote", "ctl/cli/P", "1")
    assert code == 2 and err.strip() == "error: version: version 1 is already the champion of ctl/cli/P"
    code, _, err = sparkhu(capsys, *cli, "models", "promote", "ctl/cli/P", "9")
    assert code == 2 and "not found" in err and "Traceback" not in err
    code, _, err = sparkhu(capsys, *cli, "models", "rollback", "ctl/cli/P")
    assert code == 2 and err.strip() == "error: ctl/cli/P: no earlier champion than version 1 to roll back to"
    code, out, _ = sparkhu(capsys, *cli, "models", "history", "ctl/cli/P")
    assert code == 0 and "looks right" in out and "(champion)" in out and "1 champion(s)" in out
    code, _, err = sparkhu(capsys, *cli, "models", "history", "not-a-series")
    assert code == 2 and "is not source/measurement/field" in err
    code, _, err = sparkhu(capsys, *cli, "policies", "delete", "nope")
    assert (
        code == 2
        and err.strip() == "error: no training policy named 'nope'; `sparkhu policies list` shows them"
    )
    assert sparkhu(capsys, *cli, "policies", "delete", "gated")[0] == 0
