"""Fixtures of the stream tests: a fresh SQLite bus and a spawn context for other processes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from multiprocessing.context import SpawnContext
from pathlib import Path

import pytest

from sparkhu.stream.sqlite import SqliteBus


@pytest.fixture
def bus_uri(tmp_path: Path) -> str:
    """URI of a bus file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'bus.db'}"


@pytest.fixture
def bus(bus_uri: str) -> Iterator[SqliteBus]:
    """A fresh bus with 4 partitions per topic and a short (0.5 s) session timeout."""
    with SqliteBus(bus_uri, default_partitions=4, session_timeout=0.5) as opened:
        yield opened


@pytest.fixture
def spawn(monkeypatch: pytest.MonkeyPatch, pytestconfig: pytest.Config) -> SpawnContext:
    """A ``spawn`` multiprocessing context whose children can import the test modules."""
    monkeypatch.syspath_prepend(str(pytestconfig.rootpath))
    return multiprocessing.get_context("spawn")
