"""``sparkhu connectors``: declare from Kafka Connect JSON, list with status, pause, delete;
bad input is one line and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparkhu.cli.main import run

REQUEST = {
    "name": "mock_data_rewinder",
    "config": {
        "connector.class": "sparkhu.influxdb",
        "influxdb.url": "http://127.0.0.1:1",
        "topic.prefix": "AMPds2_tests_",
        "topic.mapper": "measurement",
        "influxdb.db": "AMPds2",
        "mode": "timestamp",
    },
}


def sparkhu(capsys, *argv: str) -> tuple[int, str, str]:
    code = 0
    try:
        run([*argv])
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_declare_list_pause_resume_delete(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARKHU_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "req.json").write_text(json.dumps(REQUEST))
    declared = sparkhu(capsys, "connectors", "put", "req.json")
    assert declared[:2] == (0, "connector mock_data_rewinder declared\n")
    code, out, _ = sparkhu(capsys, "connectors", "list", "--json")
    assert code == 0 and json.loads(out) == [
        {"name": "mock_data_rewinder", "class": "sparkhu.influxdb", "state": "UNASSIGNED", "tasks": []}
    ]
    assert sparkhu(capsys, "connectors", "pause", "mock_data_rewinder")[0] == 0
    assert json.loads(sparkhu(capsys, "connectors", "list", "--json")[1])[0]["state"] == "PAUSED"
    monkeypatch.setenv("COLUMNS", "200")
    assert "│ mock_data_rewinder │ sparkhu.influxdb │ PAUSED" in sparkhu(capsys, "connectors", "list")[1]
    assert sparkhu(capsys, "connectors", "delete", "mock_data_rewinder")[0] == 0
    code, _, err = sparkhu(capsys, "connectors", "delete", "mock_data_rewinder")
    assert code != 0 and err.strip() == "error: connector 'mock_data_rewinder' not found; declared: none"
    (tmp_path / "bad.json").write_text('{"connector.class": "sparkhu.influxdb", "mode": "bulk"}')
    code, _, err = sparkhu(capsys, "connectors", "put", "bad.json", "--name", "b")
    assert code != 0 and "connectors.b.mode: 'bulk' is not supported" in err and "Traceback" not in err
