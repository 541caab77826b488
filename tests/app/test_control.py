"""The assembly runs the controller beside the online predictors exactly when training policies exist."""

from __future__ import annotations

from pathlib import Path

from sparkhu.app.assembly import build_platform
from sparkhu.app.runtime import Runtime
from sparkhu.config import Settings
from sparkhu.connectors import configured_sources
from sparkhu.control.policies import set_policy

SOURCE = """
[[sources]]
name = "meters"
kind = "file"
path = "{path}"
source = "ctl"
measurement = "asm"
"""


def _services(home: Path, toml: str) -> list[str]:
    (home / "sparkhu.toml").write_text(toml)
    settings = Settings.load(toml_path=home / "sparkhu.toml", env={}, overrides={"home": str(home)})
    with Runtime(settings) as runtime:
        return [
            s.name for s in build_platform(runtime, configured_sources(settings), pipeline=False).services
        ]


def test_up_runs_the_controller_when_policies_exist(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("ts,P\n2024-01-01T00:00:00Z,1\n")
    source = SOURCE.format(path=tmp_path / "m.csv")
    assert "controller" not in _services(tmp_path, source)
    assert "controller" in _services(tmp_path, source + '\n[[policies]]\nname = "all"\n')
    with Runtime(Settings.load(toml_path=None, env={}, overrides={"home": str(tmp_path)})) as runtime:
        set_policy(runtime.catalog, {"name": "set-at-run-time"}, actor="test")  # kept in the catalog
    assert "controller" in _services(tmp_path, source)
