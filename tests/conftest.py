"""Fixtures shared by every test folder, and the CI rule: in CI a skip is a failure."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sparkhu.config import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A test that would be skipped for a missing service or tool fails in CI instead."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must have every service and tool: {report.longrepr}"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty sparkhu home directory."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def settings(home: Path) -> Settings:
    """Embedded-default settings inside ``home``, ignoring the real environment."""
    return Settings.load(toml_path=None, env={"SPARKHU_HOME": str(home)})
