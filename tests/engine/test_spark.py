"""SparkEngine: the same results as the local engine on real tasks, on local[2] and on a
standalone cluster (a master and two workers started by the fixtures), failures isolated."""

from __future__ import annotations

import socket
import textwrap
import time
import uuid
from datetime import UTC, date, datetime

import pandas as pd
import pyarrow as pa
import pytest

from sparkhu.config import EngineSettings
from sparkhu.demo.generator import generate
from sparkhu.engine import open_engine
from sparkhu.engine.base import CallFailure, call_inputs
from sparkhu.engine.local import LocalEngine
from sparkhu.errors import BackendUnavailable, ConfigError, PipelineError
from sparkhu.pipeline.base import SeriesMeta, TaskInput, TaskOutput
from sparkhu.pipeline.daily import daily_dag
from sparkhu.pipeline.runner import PipelineRunner
from sparkhu.pipeline.tasks.dedup import deduplicate
from sparkhu.pipeline.tasks.regularity import analyse
from sparkhu.series import points, series_frames, series_runs
from sparkhu.storage.catalog import Catalog, SeriesInfo
from sparkhu.storage.lake import Lake

pytestmark = [pytest.mark.spark, pytest.mark.timeout(300)]

FNS = """
import pandas as pd

def summary(frame, series_id, fail_on=None):
    if series_id == fail_on:
        raise ValueError(f"boom in {series_id}")
    return pd.DataFrame({"ts": frame["ts"].iloc[-1:], "n": [len(frame)], "last": frame["value"].iloc[-1:]})
"""
DAYS = (date(2012, 4, 2), date(2012, 4, 3))


@pytest.fixture(scope="module")
def demo():
    return generate(days=3, meters=10, seed=7)


@pytest.fixture(scope="module")
def fns(tmp_path_factory, spark_local):
    """A module of series functions, importable in Spark's workers through ``addPyFile``."""
    folder = tmp_path_factory.mktemp("spark_fns")
    name = f"sparkhu_spark_fns_{uuid.uuid4().hex[:8]}"
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(FNS))
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(folder))
        module = __import__(name)
        module.path = str(path)
        yield module


def task_inputs(table: pa.Table) -> list[TaskInput]:
    start, end = pd.Timestamp(DAYS[0], tz="UTC"), pd.Timestamp(DAYS[1], tz="UTC")
    return [
        TaskInput(sid, {"points": frame}, SeriesMeta(sid), start, end) for sid, frame in series_frames(table)
    ]


def assert_same_outputs(expected: list, got: list) -> None:
    assert len(got) == len(expected)
    for want, have in zip(expected, got, strict=True):
        assert type(have) is type(want)
        if isinstance(want, CallFailure):
            assert have == want
            continue
        assert isinstance(have, TaskOutput)
        assert have.report == want.report and have.metadata == want.metadata and have.skipped == want.skipped
        assert have.frames.keys() == want.frames.keys()
        for key, frame in want.frames.items():
            pd.testing.assert_frame_equal(have.frames[key], frame)


def run_pipeline(engine, root, demo) -> tuple[Lake, list[str]]:
    lake, catalog = Lake(f"{root}/lake"), Catalog(f"sqlite:///{root}/catalog.db")
    lake.write("raw", "demo", demo.points)
    for sid in demo.points.column("series_id").combine_chunks().dictionary.to_pylist():
        catalog.upsert_series(SeriesInfo.of(sid, unit="W", value_min=0.0, value_max=100_000.0))
    dag = daily_dag(exclude=["anomalies"])  # validate … impute, decompose (and their reports)
    runner = PipelineRunner(lake, catalog, engine, dag, dataset="demo", days_per_run=2, backoff_s=0)
    summary = runner.run(*DAYS)
    catalog.close()
    statuses = [f"{r.task}:{r.status}:{r.count('success')}/{r.count('skipped')}/{r.count('failed')}"
                for r in summary.runs]  # fmt: skip
    return lake, statuses


def test_pipeline_on_spark_identical_to_local(spark_local, demo, tmp_path):
    local_lake, local_runs = run_pipeline(LocalEngine(1), tmp_path / "local", demo)
    spark_lake, spark_runs = run_pipeline(spark_local, tmp_path / "spark", demo)
    assert spark_runs == local_runs
    assert any(r.startswith("decompose:success") for r in spark_runs), spark_runs
    datasets = local_lake.datasets()
    assert spark_lake.datasets() == datasets
    assert {"clean", "analysis", "validated"} <= {zone for zone, _ in datasets}
    for zone, name in datasets:
        if zone == "quarantine":
            continue
        assert spark_lake.read_table(zone, name).equals(local_lake.read_table(zone, name)), f"{zone}/{name}"


def test_map_inputs_identical_and_a_failing_series_isolated(spark_local, demo):
    inputs = task_inputs(demo.points)
    broken = TaskInput("x/y/broken", {"other": inputs[0].frames["points"]}, SeriesMeta("x/y/broken"),
                       inputs[0].start, inputs[0].end)  # fmt: skip
    inputs.insert(3, broken)
    for fn, params in [(deduplicate, {}), (analyse, {"window_days": 2})]:
        expected = call_inputs(fn, dict(params), inputs)
        sizes = [len(i.frames.get("points", ())) for i in inputs]
        got = spark_local.map_inputs(fn, inputs, params, sizes=sizes)
        assert_same_outputs(expected, got)
        assert isinstance(got[3], CallFailure) and "x/y/broken" in got[3].error
        assert sum(isinstance(g, TaskOutput) for g in got) == len(inputs) - 1


def test_map_series_identical_to_local_with_failures(spark_local, fns, demo):
    spark_local.session.sparkContext.addPyFile(fns.path)
    table = demo.points
    with LocalEngine(1) as local:
        want, want_failures = local.map_series(fns.summary, table, fail_on="ampds2/electricity/FGE.P")
    got, failures = spark_local.map_series(fns.summary, table, fail_on="ampds2/electricity/FGE.P")
    assert got.equals(want)
    assert failures == want_failures
    assert [sid for sid, _ in failures] == ["ampds2/electricity/FGE.P"]
    assert "ValueError: boom in ampds2/electricity/FGE.P" in failures[0][1]
    assert got.num_rows == len(series_runs(table).names) - 1


def test_read_lake_prunes_dedups_and_feeds_map_series(spark_local, fns, tmp_path):
    from sparkhu.engine.spark import LakeSlice, read_lake

    spark_local.session.sparkContext.addPyFile(fns.path)
    lake = Lake(tmp_path / "lake")
    day = 86_400_000_000
    lake.write("raw", "m", points(["a/b/c"] * 3 + ["a/b/d"], [0, 60_000_000, day, 0], [1.0, 2.0, 3.0, 4.0]))
    lake.write("raw", "m", points("a/b/c", [60_000_000], [20.0]))  # a correction: the newer file wins
    first_day = (datetime(1970, 1, 1, tzinfo=UTC), datetime(1970, 1, 2, tzinfo=UTC))
    frame = read_lake(spark_local.session, lake, "raw", "m", start=first_day[0], end=first_day[1])
    assert len(frame.inputFiles()) == 2  # the second day's partition is not opened
    rows = sorted((r.series_id, r.value) for r in frame.collect())
    assert rows == [("a/b/c", 1.0), ("a/b/c", 20.0), ("a/b/d", 4.0)]
    assert read_lake(spark_local.session, lake, "raw", "m", series=["a/b/d"]).count() == 1
    got, failures = spark_local.map_series(fns.summary, LakeSlice(lake, "raw", "m"))
    want, want_failures = LocalEngine(1).map_series(fns.summary, lake.read("raw", "m"))
    assert got.equals(want) and failures == want_failures == []
    assert got.column("last").to_pylist() == [3.0, 4.0]
    assert read_lake(spark_local.session, lake, "raw", "nothing").count() == 0


def test_one_session_reused_across_calls(spark_local):
    session = spark_local.session
    app = session.sparkContext.applicationId
    spark_local.map_inputs(abs, [-1.0, -2.0], {})
    spark_local.map_inputs(abs, [-3.0], {})
    assert spark_local.session is session
    assert spark_local.session.sparkContext.applicationId == app


def test_malformed_uris_and_arguments(spark_local):
    for uri in ["yarn", "spark://", "spark://host:notaport", "local[0]", "local[x]"]:
        with pytest.raises(ConfigError, match=r"engine\.uri"):
            open_engine(EngineSettings(uri=uri))
    with pytest.raises(PipelineError, match=r"lambda|top level"):
        spark_local.map_inputs(lambda x: x, [1], {})
    with pytest.raises(PipelineError, match="table of points"):
        spark_local.map_series(abs, pa.table({"a": [1]}))
    assert spark_local.map_inputs(abs, [], {}) == []


def test_missing_java_is_a_config_error(tmp_path):
    from sparkhu.engine.spark import SparkEngine

    with pytest.raises(ConfigError, match=r"Java 17.*JAVA_HOME=.*no bin/java"):
        _ = SparkEngine("local[1]", env={"JAVA_HOME": str(tmp_path)}).session
    with pytest.raises(ConfigError, match="no java on PATH"):
        _ = SparkEngine("local[1]", env={"PATH": str(tmp_path)}).session


def test_unreachable_master_names_the_uri_quickly():
    from sparkhu.engine.spark import SparkEngine

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    uri = f"spark://127.0.0.1:{port}"
    began = time.monotonic()
    with pytest.raises(BackendUnavailable, match=f"cannot reach {uri}: no Spark master answers"):
        _ = SparkEngine(uri, connect_timeout_s=2).session
    assert time.monotonic() - began < 5


def test_standalone_cluster_gives_the_same_results(spark_local, spark_cluster, fns, demo):
    """Last in the module: the local session is stopped, as PySpark runs one per process."""
    from sparkhu.engine.spark import SparkEngine
    from sparkhu.sparkstudy.cluster import master_status

    spark_local.close()
    inputs = task_inputs(demo.points)
    expected = call_inputs(deduplicate, {}, inputs)
    with LocalEngine(1) as local:
        want, _ = local.map_series(fns.summary, demo.points, fail_on="ampds2/electricity/WHE.P")
    with SparkEngine(spark_cluster.uri, conf=spark_local.conf) as engine:
        context = engine.session.sparkContext
        tracker = context._jsc.sc().statusTracker()
        deadline = time.monotonic() + 30
        while len(tracker.getExecutorInfos()) < 3 and time.monotonic() < deadline:  # driver + 2
            time.sleep(0.2)
        assert len(tracker.getExecutorInfos()) == 3
        assert engine.cores == 2
        context.addPyFile(fns.path)
        assert_same_outputs(expected, engine.map_inputs(deduplicate, inputs, {}, sizes=[1] * len(inputs)))
        got, failures = engine.map_series(fns.summary, demo.points, fail_on="ampds2/electricity/WHE.P")
        assert got.equals(want) and [sid for sid, _ in failures] == ["ampds2/electricity/WHE.P"]
        apps = master_status(spark_cluster.ui)["activeapps"]
        assert [a["name"] for a in apps] == ["sparkhu"] and apps[0]["cores"] == 2
