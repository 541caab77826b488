"""Spark fixtures: one local[2] engine per session.

The standalone cluster (a master and two workers) is the session's ``spark_cluster`` of
tests/conftest.py, shared with the Spark study's tests. PySpark allows one active session per
process: a test on the cluster closes the local engine first (it restarts lazily if needed).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

TEST_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
}


@pytest.fixture(scope="session")
def spark_local() -> Iterator[object]:
    pytest.importorskip("pyspark")
    from sparkhu.engine.spark import SparkEngine

    engine = SparkEngine("local[2]", conf=TEST_CONF)
    yield engine
    engine.close()
