"""What both engines share: balanced cuts, per-series calls, and imports that stay public."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sparkhu.engine.spark as spark_module
from sparkhu.engine.base import balanced_edges, call_series, split_series
from sparkhu.errors import PipelineError
from sparkhu.series import points


def test_balanced_edges_cut_contiguous_non_empty_runs():
    assert balanced_edges([1] * 8, 4) == [0, 2, 4, 6, 8]
    assert balanced_edges([100, 1, 1, 1], 2) == [0, 1, 4]
    assert balanced_edges([3, 3], 8) == [0, 1, 2]
    assert balanced_edges([], 4) == [0, 0]
    sizes = np.random.default_rng(1).integers(1, 50, 200)
    edges = balanced_edges(sizes.tolist(), 7)
    assert edges[0] == 0 and edges[-1] == 200 and len(edges) <= 8
    assert all(hi > lo for lo, hi in itertools.pairwise(edges))


def _last(frame: pd.DataFrame, series_id: str) -> pd.DataFrame:
    if series_id == "b/b/b":
        raise ValueError("boom")
    return frame.tail(1)


def _not_a_frame(frame: pd.DataFrame, series_id: str) -> int:
    return len(frame)


def test_call_series_turns_errors_and_bad_results_into_messages():
    groups = split_series(points(["a/a/a", "b/b/b", "a/a/a"], [1, 0, 0], [1.0, 2.0, 3.0]))
    [(a, frame, none), (b, missing, error)] = call_series(_last, {}, groups)
    assert (a, frame["value"].tolist(), none) == ("a/a/a", [1.0], None)
    assert b == "b/b/b" and missing is None and error is not None and error.startswith("ValueError: boom")
    [(_, _, wrong), _] = call_series(_not_a_frame, {}, groups)
    assert wrong == "_not_a_frame returned int, expected a pandas DataFrame"


def test_split_series_refuses_what_is_not_points():
    with pytest.raises(PipelineError, match="not a table of points: missing column"):
        split_series(points("a/a/a", [0], [1.0]).drop_columns(["value"]))
    with pytest.raises(PipelineError, match=r"expected a pyarrow\.Table"):
        split_series([1, 2])


def test_the_spark_engine_imports_no_private_helper():
    tree = ast.parse(Path(spark_module.__file__).read_text())
    private = [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sparkhu")
        for alias in node.names
        if alias.name.startswith("_") or any(part.startswith("_") for part in node.module.split("."))
    ]
    assert private == []
