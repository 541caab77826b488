"""docs/extending.md is true: its toy connector and model, installed by entry point, work end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from tests.conftest import run_until

from sparkhu.app.runtime import Runtime
from sparkhu.config import Settings

DOC = Path(__file__).parents[1] / "docs" / "extending.md"
EXE = str(Path(sys.executable).with_name("sparkhu"))


def examples() -> dict[str, str]:
    """The doc's blocks marked ``<!-- example: NAME -->``, by name."""
    found = re.findall(r"<!-- example: (\S+) -->\n```\w*\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    return dict(found)


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    """A folder on PYTHONPATH holding the doc's modules and a distribution declaring their entry points."""
    blocks = examples()
    folder = tmp_path / "plugins"
    info = folder / "toy_plugins-0.1.dist-info"
    info.mkdir(parents=True)
    (folder / "toy_connector.py").write_text(blocks["toy_connector.py"])
    (folder / "toy_model.py").write_text(blocks["toy_model.py"])
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugins\nVersion: 0.1\n")
    groups = tomllib.loads(blocks["entry_points.txt"])["project"]["entry-points"]
    groups["sparkhu.models"] = {"window_mean": "toy_model:WindowMean"}
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in points.items())
            for group, points in groups.items()
        )
    )
    return folder


def run(
    plugin_path: Path, env: dict[str, str], *argv: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, env=plugin_env(plugin_path, env)
    )


def plugin_env(plugin_path: Path, env: dict[str, str]) -> dict[str, str]:
    """This environment plus ``env``, with the plugins' folder first on PYTHONPATH."""
    path = os.pathsep.join(p for p in (str(plugin_path), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, **env, "PYTHONPATH": path}


@pytest.mark.slow
@pytest.mark.integration
def test_the_documented_connector_runs_under_up(
    tmp_path: Path, plugin_path: Path, distributed_env: dict[str, str]
) -> None:
    toml = tmp_path / "sparkhu.toml"
    toml.write_text(f'home = "{tmp_path / "home"}"\n[gateway]\nport = 0\n' + examples()["sparkhu.toml"])
    settings = Settings.load(toml_path=toml, env=distributed_env)
    with Runtime(settings) as watch:  # opens the stores once the platform has created them

        def counted(stdout: str) -> bool:
            """Both meters' 300 steps landed and the watermark stored, once the platform is up."""
            return (
                "dashboard: http://127.0.0.1:" in stdout
                and watch.lake.read("raw", "toy_steps").num_rows == 600
                and watch.catalog.get_watermark("counting", "sparkhu.toy.steps") == {"steps": 300}
            )

        done = run_until(  # at most the 10 s it always ran for
            [EXE, "--config", str(toml), "up", "--duration", "10"],
            plugin_env(plugin_path, distributed_env),
            counted,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    with Runtime(settings) as runtime:
        landed = runtime.lake.read("raw", "toy_steps")
        watermark = runtime.catalog.get_watermark("counting", "sparkhu.toy.steps")
    assert landed.num_rows == 600
    assert sorted(set(landed.column("series_id").to_pylist())) == ["toy/steps/a", "toy/steps/b"]
    assert watermark == {"steps": 300}


def test_an_unknown_kind_lists_the_plugged_in_ones(tmp_path: Path, plugin_path: Path) -> None:
    toml = tmp_path / "sparkhu.toml"
    toml.write_text(
        f'home = "{tmp_path / "home"}"\n'
        "[[sources]]\nname = 'a'\nkind = 'ftp'\nsource = 's'\nmeasurement = 'm'\n"
        "[[sources]]\nname = 'b'\nkind = 'counter'\nsource = 's'\nmeasurement = 'm'\n"
        "meters = ['x']\nspeed = 3\n"
    )
    done = run(plugin_path, {}, EXE, "--config", str(toml), "up", "--duration", "1")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    known = "counter, file, influxdb, kafka, replay"
    assert f"sources.a.kind: unknown source kind 'ftp'; known: {known}" in done.stderr
    toml.write_text(toml.read_text().replace("kind = 'ftp'", "kind = 'counter'\nmeters = ['y']"))
    done = run(plugin_path, {}, EXE, "--config", str(toml), "up", "--duration", "1")
    assert done.returncode == 2 and "sources.b.speed: Extra inputs are not permitted" in done.stderr


def test_the_documented_model_is_found_by_name(plugin_path: Path) -> None:
    script = (
        "import numpy as np\n"
        "from sparkhu.forecast.models import MODELS, make_model\n"
        "model = make_model('window_mean', window=3).fit(np.arange(10.0))\n"
        "print(model.forecast(2).tolist(), 'window_mean' in MODELS.keys())\n"
    )
    done = run(plugin_path, {}, sys.executable, "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[8.0, 8.0] True"
