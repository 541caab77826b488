"""Fixtures of the Spark study: generated text with known answers, and one two-worker cluster.

The cluster (a master and two workers of 1 core and 1 GB each, on 127.0.0.1) is started once
per session from the pip-installed PySpark and stopped at the end; every run of a study is a
driver process of its own, so these tests never hold a Spark session in the test process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sparkhu.sparkstudy.textgen import TextStats, generate


@pytest.fixture(scope="session")
def passwords_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TextStats]:
    """About 400 KB of password-like lines and their known answers."""
    path = tmp_path_factory.mktemp("text") / "passwords.txt"
    return path, generate(path, "400KB", seed=7)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A running standalone cluster of two workers (1 core, 1 GB each)."""
    pytest.importorskip("pyspark")
    from sparkhu.sparkstudy.cluster import LocalCluster

    with LocalCluster(tmp_path_factory.mktemp("cluster"), workers=2, worker_cores=1, worker_memory="1g") as c:
        yield c
