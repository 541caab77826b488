"""Fixtures of the Spark study: generated text with known answers, and one two-worker cluster.

The cluster (a master and two workers of 1 core and 1 GB each, on 127.0.0.1) is the session's
``spark_cluster`` (tests/conftest.py), shared with the engine's tests; every run of a study is a
driver process of its own, so these tests never hold a Spark session in the test process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkhu.sparkstudy.textgen import TextStats, generate


@pytest.fixture(scope="session")
def passwords_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TextStats]:
    """About 400 KB of password-like lines and their known answers."""
    path = tmp_path_factory.mktemp("text") / "passwords.txt"
    return path, generate(path, "400KB", seed=7)


@pytest.fixture(scope="session")
def cluster(spark_cluster: object) -> object:
    """The session's standalone cluster of two workers (1 core, 1 GB each; tests/conftest.py)."""
    return spark_cluster
