from pathlib import Path

import pytest

from sparkhu.config import Settings, dataset_name
from sparkhu.errors import ConfigError


def test_defaults_live_in_one_home(tmp_path: Path):
    s = Settings.load(toml_path=None, env={"SPARKHU_HOME": str(tmp_path)})
    assert s.storage.lake == tmp_path.joinpath("lake").as_uri()
    assert s.storage.catalog == f"sqlite:///{tmp_path / 'catalog.db'}"
    assert s.bus.uri == f"sqlite:///{tmp_path / 'bus.db'}"
    assert s.mlflow.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert s.forecast.alpha == 0.6


def test_toml_then_env_then_overrides(tmp_path: Path):
    toml = tmp_path / "sparkhu.toml"
    toml.write_text('home = "/srv/a"\n[gateway]\nport = 9000\ntoken = "t"\n[bus]\nuri = "kafka://b:9092"\n')
    s = Settings.load(
        toml_path=toml, env={"SPARKHU_GATEWAY__PORT": "9001", "OTHER": "x"}, overrides={"forecast.alpha": 0.3}
    )
    assert s.home == Path("/srv/a")
    assert s.gateway.port == 9001 and s.gateway.token == "t"
    assert s.bus.uri == "kafka://b:9092"
    assert s.forecast.alpha == 0.3


def test_sources_from_toml(tmp_path: Path):
    toml = tmp_path / "sparkhu.toml"
    toml.write_text('[[sources]]\nname = "m"\nkind = "replay"\npath = "a.csv"\nshift = "+3196d"\n')
    (spec,) = Settings.load(toml_path=toml, env={}).sources
    assert spec.shift == "+3196d" and spec.dataset == "ampds2_electricity"
    assert dataset_name("a", "b") == "a_b"


@pytest.mark.parametrize(
    ("text", "env", "match"),
    [
        ("[gateway]\nport = 'abc'\n", {}, r"sparkhu.toml: gateway.port: .*integer.*'abc'"),
        ("[gateway]\nport = 70000\n", {}, r"gateway.port: .*65535"),
        ("", {"SPARKHU_GATEWAY__PORT": "x"}, r"environment variable SPARKHU_GATEWAY__PORT: gateway.port"),
        ("[storage]\ncatalog = 'mysql://x'\n", {}, r"storage.catalog: expected sqlite:///path or postgresql"),
        ("[bus]\nuri = 'amqp://x'\n", {}, r"bus.uri: expected sqlite:///path or kafka://"),
        ("[gateway\nport=1", {}, r"sparkhu.toml: not valid TOML"),
        ("[forecast]\nalpha = 1.5\n", {}, r"forecast.alpha"),
        ("[nonsense]\nx = 1\n", {}, r"nonsense: Extra inputs are not permitted"),
        (
            "[[sources]]\nname='a'\nkind='file'\npath='p'\nshift='soon'\n",
            {},
            r"sources.0.shift: expected end_now",
        ),
        ("[[sources]]\nname='a'\nkind='ftp'\npath='p'\n", {}, r"sources.0.kind"),
        ("home = 1\n[home]\n", {}, r"not valid TOML"),
    ],
)
def test_bad_settings_name_the_key_and_where(tmp_path: Path, text, env, match):
    toml = tmp_path / "sparkhu.toml"
    toml.write_text(text)
    with pytest.raises(ConfigError, match=match):
        Settings.load(toml_path=toml, env=env)


def test_value_where_a_section_is_expected():
    with pytest.raises(ConfigError, match=r"gateway\.port\.x: port is a value"):
        Settings.load(toml_path=None, env={"SPARKHU_GATEWAY__PORT": "1", "SPARKHU_GATEWAY__PORT__X": "2"})
