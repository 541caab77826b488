from datetime import UTC, datetime
from pathlib import Path

import pytest

from sparkhu.config import Settings, dataset_name
from sparkhu.connectors import configured_sinks, configured_sources
from sparkhu.connectors.replay import ReplaySourceSettings
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
    toml.write_text(
        '[[sources]]\nname = "m"\nkind = "replay"\npath = "a.csv"\nshift = "+3196d"\n'
        'source = "ampds2"\nmeasurement = "electricity"\n'
    )
    (spec,) = configured_sources(Settings.load(toml_path=toml, env={}))
    assert isinstance(spec, ReplaySourceSettings)
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
        (
            "[storage]\nlake = '::::'\n",
            {},
            r"sparkhu.toml: storage.lake: expected a folder path or a URI .*'::::'",
        ),
        (
            "",
            {"SPARKHU_STORAGE__LAKE": "s3:bucket"},
            r"SPARKHU_STORAGE__LAKE: storage.lake: expected a folder",
        ),
        ("[storage]\nlake = 'nosuch://host/lake'\n", {}, r"storage.lake: unknown URI scheme 'nosuch'"),
        ("[storage]\nlake = 's3://'\n", {}, r"storage.lake: the URI names no bucket or folder"),
        ("[gateway\nport=1", {}, r"sparkhu.toml: not valid TOML"),
        ("[forecast]\nalpha = 1.5\n", {}, r"forecast.alpha"),
        ("[nonsense]\nx = 1\n", {}, r"nonsense: Extra inputs are not permitted"),
        ("[[sources]]\nname='a b'\nkind='file'\n", {}, r"sparkhu.toml: sources.0.name: String should match"),
        ("[pipeline]\nschedule = '25:00'\n", {}, r"pipeline.schedule: expected HH:MM \(UTC\) or a cron"),
        ("home = 1\n[home]\n", {}, r"not valid TOML"),
        ("stop_timeout_s = 0\n", {}, r"sparkhu.toml: stop_timeout_s: .*greater than 0"),
        ("", {"SPARKHU_STOP_TIMEOUT_S": "soon"}, r"SPARKHU_STOP_TIMEOUT_S: stop_timeout_s: .*number"),
    ],
)
def test_bad_settings_name_the_key_and_where(tmp_path: Path, text, env, match):
    toml = tmp_path / "sparkhu.toml"
    toml.write_text(text)
    with pytest.raises(ConfigError, match=match):
        Settings.load(toml_path=toml, env=env)


SOURCE = "[[sources]]\nname='a'\nsource='s'\nmeasurement='m'\n"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            SOURCE + "kind='replay'\npath='p'\nshift='soon'\n",
            r"sparkhu.toml: sources.a.shift: .*expected end_now",
        ),
        (
            SOURCE + "kind='ftp'\npath='p'\n",
            r"sparkhu.toml: sources.a.kind: unknown source kind 'ftp'; known: file",
        ),
        (SOURCE + "kind='file'\npath='p'\nshift='+1d'\n", r"sources.a.shift: Extra inputs are not permitted"),
        (SOURCE + "kind='file'\n", r"sources.a.path: Field required"),
        ("[[sources]]\nname='a'\nkind='file'\npath='p'\n", r"sources.0.source: Field required"),
        (
            SOURCE + "kind='file'\npath='p'\n" + SOURCE + "kind='file'\npath='q'\n",
            r"sources.a: the name is used twice",
        ),
        ("[[sinks]]\nname='k'\nkind='lake'\nzone=3\n", r"sinks.k.zone: Input should be a valid string"),
    ],
)
def test_bad_source_entries_name_the_entry_and_field(tmp_path: Path, text: str, match: str):
    toml = tmp_path / "sparkhu.toml"
    toml.write_text(text)
    with pytest.raises(ConfigError, match=match):
        settings = Settings.load(toml_path=toml, env={})
        configured_sources(settings)
        configured_sinks(settings)


def test_pipeline_schedule_takes_cron_expressions():
    s = Settings.load(toml_path=None, env={"SPARKHU_PIPELINE__SCHEDULE": "10 */6 * * *"})
    assert s.pipeline.trigger().get_next_fire_time(None, datetime(2024, 1, 1, 7, tzinfo=UTC)) == datetime(
        2024, 1, 1, 12, 10, tzinfo=UTC
    )


def test_value_where_a_section_is_expected():
    with pytest.raises(ConfigError, match=r"gateway\.port\.x: port is a value"):
        Settings.load(toml_path=None, env={"SPARKHU_GATEWAY__PORT": "1", "SPARKHU_GATEWAY__PORT__X": "2"})


@pytest.mark.parametrize(
    "root", ["lake", "/srv/lake", "/data/run:1/lake", "file:///srv/lake", "s3://bucket/lake"]
)
def test_lake_roots_that_are_folders_or_known_uris_are_taken_as_given(root: str):
    assert Settings.load(toml_path=None, env={"SPARKHU_STORAGE__LAKE": root}).storage.lake == root
