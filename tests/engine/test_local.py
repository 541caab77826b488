"""LocalEngine: per-series mapping inline and in a real spawn process pool, failures isolated."""

from __future__ import annotations

import importlib
import os
import textwrap
import threading
import uuid

import numpy as np
import pyarrow as pa
import pytest

from sparkhu.engine.base import split_series
from sparkhu.engine.local import LocalEngine
from sparkhu.errors import PipelineError
from sparkhu.series import POINT_SCHEMA, points

# Series functions must be importable by spawned workers: they live in a real module file
# on sys.path, as they would in a user's package.
FNS = """
import os
import pandas as pd

def tag_pid(frame, series_id, fail_on=None, offset=0.0):
    if series_id == fail_on:
        raise ValueError(f"boom in {series_id}")
    return pd.DataFrame({"n": [len(frame)], "total": [float(frame["value"].sum()) + offset],
                         "pid": [os.getpid()]})

def not_a_frame(frame, series_id):
    return 42

def die(frame, series_id):
    if series_id.endswith("/0"):
        os._exit(3)
    return frame
"""


@pytest.fixture(scope="module")
def fns(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fns")
    name = f"sparkhu_engine_fns_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(textwrap.dedent(FNS))
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(folder))
        yield importlib.import_module(name)


@pytest.fixture(scope="module")
def pool_engine(fns):
    with LocalEngine(workers=2, min_rows_for_pool=1_000) as engine:
        yield engine


def many(n_series: int, per_series: int) -> pa.Table:
    ids = np.repeat([f"s/m/{i}" for i in range(n_series)], per_series)
    ts = np.tile(np.arange(per_series, dtype="int64") * 60_000_000, n_series)
    return points(ids.tolist(), ts, np.ones(ids.size))


def test_one_failing_series_does_not_stop_the_others(fns):
    table = points(["a/b/x", "a/b/y", "a/b/y", "a/b/z"], [0, 0, 1, 0], [1.0, 2.0, 3.0, 4.0])
    with LocalEngine(workers=1) as engine:
        result, failures = engine.map_series(fns.tag_pid, table, fail_on="a/b/y", offset=0.5)
    assert engine.last_mode == "inline"
    assert result.column("series_id").to_pylist() == ["a/b/x", "a/b/z"]
    assert result.column("total").to_pylist() == [1.5, 4.5]
    assert result.column("pid").to_pylist() == [os.getpid()] * 2
    assert len(failures) == 1
    sid, message = failures[0]
    assert sid == "a/b/y" and "ValueError: boom in a/b/y" in message and ".py:" in message


def test_process_pool_really_used_for_larger_inputs(fns, pool_engine):
    table = many(8, 500)
    result, failures = pool_engine.map_series(fns.tag_pid, table, fail_on="s/m/3")
    assert pool_engine.last_mode == "pool"
    assert failures == [("s/m/3", failures[0][1])] and "boom in s/m/3" in failures[0][1]
    assert sorted(result.column("series_id").to_pylist()) == sorted(f"s/m/{i}" for i in range(8) if i != 3)
    assert result.column("n").to_pylist() == [500] * 7
    pids = set(result.column("pid").to_pylist())
    assert os.getpid() not in pids and pids


def test_small_inputs_stay_inline(fns, pool_engine):
    result, _ = pool_engine.map_series(fns.tag_pid, many(3, 10))
    assert pool_engine.last_mode == "inline"
    assert set(result.column("pid").to_pylist()) == {os.getpid()}


def test_dead_worker_fails_its_series_and_engine_recovers(fns):
    with LocalEngine(workers=2, min_rows_for_pool=10, chunks_per_worker=2) as engine:
        _, failures = engine.map_series(fns.die, many(4, 50))
        assert "s/m/0" in [sid for sid, _ in failures]
        assert all("worker process died" in message for _, message in failures)
        result, failures = engine.map_series(fns.tag_pid, many(4, 50))
        assert failures == [] and result.num_rows == 4


def test_points_results_come_back_as_point_schema(fns):
    table = points(["a/b/c"] * 3, [2, 1, 3], [2.0, 1.0, 3.0])
    with LocalEngine(workers=1) as engine:
        result, failures = engine.map_series(fns.die, table)  # identity for this series
    assert failures == [] and result.schema.equals(POINT_SCHEMA)
    assert result.column("value").to_pylist() == [1.0, 2.0, 3.0]  # frames arrive sorted by ts


def test_bad_return_value_is_a_failure(fns):
    with LocalEngine(workers=1) as engine:
        result, failures = engine.map_series(fns.not_a_frame, many(2, 3))
    assert result.num_rows == 0
    assert [sid for sid, _ in failures] == ["s/m/0", "s/m/1"]
    assert "returned int, expected a pandas DataFrame" in failures[0][1]


def test_empty_table_maps_to_empty_result(fns):
    with LocalEngine(workers=1) as engine:
        result, failures = engine.map_series(fns.tag_pid, POINT_SCHEMA.empty_table())
    assert result.num_rows == 0 and failures == []


def test_unpicklable_functions_and_arguments_rejected_up_front(fns):
    def nested(frame, series_id):
        return frame

    engine = LocalEngine(workers=1)
    with pytest.raises(PipelineError, match=r"cannot be sent to worker processes.*top level"):
        engine.map_series(lambda frame, sid: frame, many(1, 2))
    with pytest.raises(PipelineError, match=r"nested.*cannot be sent"):
        engine.map_series(nested, many(1, 2))
    with pytest.raises(PipelineError, match="arguments of series function tag_pid cannot be pickled"):
        engine.map_series(fns.tag_pid, many(1, 2), offset=threading.Lock())


def test_malformed_inputs_rejected(fns):
    engine = LocalEngine(workers=1)
    with pytest.raises(PipelineError, match=r"expected a pyarrow\.Table of points, got dict"):
        engine.map_series(fns.tag_pid, {"ts": [1]})
    with pytest.raises(PipelineError, match=r"missing column.*value"):
        engine.map_series(fns.tag_pid, pa.table({"series_id": ["a/b/c"], "ts": [1]}))
    with pytest.raises(PipelineError, match="workers must be an integer >= 0"):
        LocalEngine(workers=-1)
    with pytest.raises(PipelineError, match="chunks_per_worker must be >= 1"):
        LocalEngine(chunks_per_worker=0)


def test_workers_zero_means_one_per_core():
    assert LocalEngine().workers == (os.cpu_count() or 1)


def test_split_series_sorts_and_slices():
    table = points(["b/b/b", "a/a/a", "b/b/b"], [5, 9, 1], [1.0, 2.0, 3.0])
    got = [(sid, frame["value"].tolist()) for sid, frame in split_series(table)]
    assert got == [("a/a/a", [2.0]), ("b/b/b", [3.0, 1.0])]
