"""`sparkhu up` runs a user's own sparkhu.toml: file source → bus → lake sink and online predictor."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.conftest import run_until

from sparkhu.app.runtime import Runtime
from sparkhu.cli.main import run
from sparkhu.config import Settings
from sparkhu.demo.generator import generate

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_up_runs_the_configured_sources(tmp_path: Path, distributed_env: dict[str, str]):
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=6)
    data = generate(days=0.25, meters=10, seed=3, start=start)
    csv = tmp_path / "Electricity_P.csv"
    data.write_csv(csv)
    home = tmp_path / "home"
    toml = tmp_path / "sparkhu.toml"
    toml.write_text(
        f'home = "{home}"\n'
        "[gateway]\nport = 0\n"
        "[[sources]]\n"
        f'name = "meters"\nkind = "file"\npath = "{csv}"\nlayout = "wide"\nfield_suffix = ".P"\n'
        'source = "ampds2"\nmeasurement = "electricity"\n'
    )
    settings = Settings.load(toml_path=toml, env=distributed_env)
    landed_rows = data.points.num_rows - _duplicates(data)

    def landed(ctx: Runtime) -> bool:
        return (
            ctx.lake.read("raw", "ampds2_electricity").num_rows == landed_rows
            and ctx.predictions.blended("ampds2/electricity/WHE.P").num_rows >= 20
            and ctx.catalog.get_watermark("meters", "sparkhu.ampds2.electricity") is not None
        )

    done = _up_until(toml, settings, distributed_env, landed, duration_s=12)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dashboard: http://127.0.0.1:" in done.stdout
    with Runtime(settings) as ctx:
        lake_points = ctx.lake.read("raw", "ampds2_electricity")
        assert lake_points.num_rows == landed_rows
        blended = ctx.predictions.blended("ampds2/electricity/WHE.P")
        assert blended.num_rows >= 20
        # the predictor's scorer saw every point (its forecasts' targets are after the file's end)
        scorer_state = ctx.predictions.checkpoint("scoring:online/sparkhu.ampds2.electricity")
        assert "ampds2/electricity/WHE.P" in scorer_state
        assert ctx.catalog.get_watermark("meters", "sparkhu.ampds2.electricity") is not None


def _up_until(
    toml: Path,
    settings: Settings,
    env: dict[str, str],
    done: Callable[[Runtime], bool],
    *,
    duration_s: float,
) -> subprocess.CompletedProcess[str]:
    """``sparkhu up`` until ``done`` holds on the home's stores (read from this process once the
    platform printed its dashboard), then SIGTERM; ``duration_s`` bounds the run as before."""
    exe = str(Path(sys.executable).with_name("sparkhu"))
    with Runtime(settings) as ctx:
        return run_until(
            [exe, "--config", str(toml), "up", "--duration", f"{duration_s:g}"],
            {**os.environ, **env},
            lambda stdout: "dashboard: http://127.0.0.1:" in stdout and done(ctx),
        )


def _duplicates(data) -> int:
    """Duplicated timestamps in the generated data collapse to one point in the lake."""
    import pyarrow.compute as pc

    keys = pc.binary_join_element_wise(
        data.points["series_id"].cast("string"), data.points["ts"].cast("int64").cast("string"), "|"
    )
    return data.points.num_rows - len(pc.unique(keys))


def test_up_with_a_bad_source_path_says_which(tmp_path: Path, distributed_env: dict[str, str]):
    toml = tmp_path / "sparkhu.toml"
    toml.write_text(
        f'home = "{tmp_path / "h"}"\n[gateway]\nport = 0\n'
        '[[sources]]\nname = "m"\nkind = "file"\npath = "/nonexistent/meters.csv"\n'
        'source = "s"\nmeasurement = "m"\n'
    )
    exe = Path(sys.executable).with_name("sparkhu")
    done = subprocess.run(
        [str(exe), "--config", str(toml), "up", "--duration", "5"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **distributed_env},
    )
    assert done.returncode == 2
    assert "/nonexistent/meters.csv" in done.stderr and "Traceback" not in done.stderr


def test_up_serves_the_registered_champions(
    tmp_path: Path, distributed_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys
):
    """History ingested and champions trained by command; `up` then serves those champions online."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    data = generate(days=1.5, meters=10, seed=5, start=now - timedelta(days=1.5), defects=False)
    history, live = tmp_path / "Electricity_P.csv", tmp_path / "live.parquet"
    cut = now - timedelta(hours=3)
    data.write_csv(history, until_unix_s=int(cut.timestamp()))
    later = pc.greater_equal(data.points["ts"], pa.scalar(cut, data.points["ts"].type))
    pq.write_table(data.points.filter(later).cast(_long_schema(data.points)), live)
    toml = tmp_path / "sparkhu.toml"
    toml.write_text(
        f'home = "{tmp_path / "home"}"\n[gateway]\nport = 0\n[forecast]\nchampion_poll_s = 1\n'
        "[[sources]]\n"
        f'name = "live"\nkind = "replay"\npath = "{live}"\nshift = "0s"\nspeed = 600\n'
        'source = "ampds2"\nmeasurement = "electricity"\n'
    )
    for key, value in distributed_env.items():
        monkeypatch.setenv(key, value)

    def sparkhu(*argv: str) -> str:
        """The CLI in this process (``up`` below runs in its own): its standard output."""
        try:
            run(["--config", str(toml), *argv])
        except SystemExit as exit_info:
            assert not exit_info.code, capsys.readouterr()
        return capsys.readouterr().out

    names = ("--source", "ampds2", "--measurement", "electricity")
    sparkhu("ingest", str(history), *names, "--layout", "wide", "--field-suffix", ".P")
    trained = sparkhu("train", "--models", "seasonal_naive,ses", "--windows", "2", "--season-length", "60")
    assert "WHE.P" in trained
    settings = Settings.load(toml_path=toml, env=distributed_env)

    def served(ctx: Runtime) -> bool:
        champion = ctx.registry.served("sparkhu.ampds2.electricity.WHE.P").label
        return champion in ctx.predictions.raw("ampds2/electricity/WHE.P").column("model").to_pylist()

    done = _up_until(toml, settings, distributed_env, served, duration_s=15)
    assert done.returncode == 0, done.stdout + done.stderr
    with Runtime(settings) as runtime:
        champion = runtime.registry.served("sparkhu.ampds2.electricity.WHE.P").label
        models = set(runtime.predictions.raw("ampds2/electricity/WHE.P").column("model").to_pylist())
    assert champion.endswith("@v1") and champion in models, (champion, models)


def _long_schema(points):
    import pyarrow as pa

    return pa.schema(
        [("series_id", pa.string()), ("ts", points.schema.field("ts").type), ("value", pa.float64())]
    )


def test_up_keeps_running_past_poison_rows_and_messages(tmp_path: Path, distributed_env: dict[str, str]):
    """Issue 10, items 1-2: an out-of-range row, undecodable bytes and a year-9999 point on the topic
    are quarantined; the platform runs its time and every valid point lands."""
    from sparkhu.online.learner import checkpoint_offsets
    from sparkhu.series import points
    from sparkhu.stream.codecs import encode_arrow

    start = int((datetime.now(UTC) - timedelta(hours=2)).timestamp()) // 60 * 60
    csv = tmp_path / "Electricity_P.csv"
    rows = [f"{start + 60 * i},{100 + i}" for i in range(30)]
    rows[10] = f"{(start + 600) * 1000},110"  # a millisecond timestamp in a seconds file
    csv.write_text("UNIX_TS,WHE\n" + "\n".join(rows) + "\n")
    home = tmp_path / "home"
    toml = tmp_path / "sparkhu.toml"
    toml.write_text(
        f'home = "{home}"\n[gateway]\nport = 0\n[[sources]]\n'
        f'name = "meters"\nkind = "file"\npath = "{csv}"\nlayout = "wide"\nfield_suffix = ".P"\n'
        'source = "ampds2"\nmeasurement = "electricity"\n'
    )
    settings = Settings.load(toml_path=toml, env=distributed_env)
    with Runtime(settings) as ctx:  # poison already on the topic when the platform starts
        topic = ctx.topic("ampds2", "electricity")
        ctx.bus.create_topic(topic)
        year_9999 = points("ampds2/electricity/WHE.P", [253_370_764_800_000_000], [1.0])
        ctx.bus.produce(topic, [(None, bytes.fromhex("ffffffff00000080")), (None, encode_arrow(year_9999))])

    def quarantined(ctx: Runtime) -> bool:
        """Every valid point landed, the poison quarantined, and the online predictor read past it all."""
        reasons = ctx.lake.read_quarantine("ampds2_electricity").column("reason").to_pylist()
        return (
            ctx.lake.read("raw", "ampds2_electricity").num_rows == 29
            and sum("years 1 to 9998" in r for r in reasons) >= 2
            and any("negative metadata length" in r for r in reasons)
            and sum(checkpoint_offsets(ctx.predictions, "online", topic).values())
            == sum(ctx.bus.end_offsets(topic).values())
        )

    done = _up_until(toml, settings, distributed_env, quarantined, duration_s=10)
    assert done.returncode == 0, done.stdout + done.stderr
    with Runtime(settings) as ctx:
        assert ctx.lake.read("raw", "ampds2_electricity").num_rows == 29
        reasons = ctx.lake.read_quarantine("ampds2_electricity").column("reason").to_pylist()
        assert sum("years 1 to 9998" in r for r in reasons) >= 2, reasons  # the CSV row, the bus point
        assert any("negative metadata length" in r for r in reasons), reasons
