"""``sparkhu retention``: the commands end to end in a temporary home; bad input is one line."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.retention.conftest import DATASET, mark_processed, minutely

from sparkhu.cli.main import run
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake


def sparkhu(capsys, *argv: str) -> tuple[int, str, str]:
    code = 0
    try:
        run([*argv])
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    out, err = capsys.readouterr()
    return code, out if out.lstrip().startswith("{") else " ".join(out.split()), err


def test_policies_plan_apply_undo_hold_audit(capsys, tmp_path: Path):
    home = ["--home", str(tmp_path)]
    now = datetime.now(UTC).replace(microsecond=0)
    Lake(tmp_path / "lake").write("raw", DATASET, minutely(now - timedelta(days=6), 6, every_s=600))
    with Catalog(f"sqlite:///{tmp_path}/catalog.db") as catalog:
        mark_processed(catalog, DATASET, (now - timedelta(days=7)).date(), now.date())
    policy = json.dumps({"name": "raw-3d", "target": "raw", "action": "archive", "keep_days": 3})
    code, out, _ = sparkhu(capsys, *home, "retention", "policies", "--set", policy)
    assert code == 0 and "raw-3d" in out
    code, out, _ = sparkhu(capsys, *home, "retention", "plan", "--json")
    plan = json.loads(out)
    assert code == 0 and plan["items"] and all(i["action"] == "archive" for i in plan["items"])
    code, out, _ = sparkhu(capsys, *home, "retention", "apply", "--plan", plan["id"])
    assert code == 0, out
    run_id = re.search(r"run (r\d+-[0-9a-f]+)", out).group(1)
    rows = sum(i["rows"] for i in plan["items"])
    assert f"{rows} rows" in out and f"{rows} archived" in out
    code, out, _ = sparkhu(capsys, *home, "retention", "undo", run_id)
    assert code == 0 and "back in the lake" in out
    code, out, _ = sparkhu(capsys, *home, "retention", "hold", "case", "--target", "raw", "--reason", "audit")
    assert code == 0
    code, out, _ = sparkhu(capsys, *home, "retention", "plan")
    assert code == 0 and "legal hold" in out
    code, out, _ = sparkhu(capsys, *home, "retention", "restore", "--dataset", DATASET)
    assert code == 0 and f"restored {rows} rows" in out
    code, out, _ = sparkhu(capsys, *home, "retention", "audit")
    assert code == 0 and all(word in out for word in ("archive", "undo", "hold.set", "restore", "policy.set"))


def test_bad_input_is_one_line(capsys, tmp_path: Path):
    home = ["--home", str(tmp_path)]
    code, _, err = sparkhu(capsys, *home, "retention", "policies", "--set", '{"name": "x", "target": "disk"}')
    assert code == 2 and len(err.strip().splitlines()) == 1 and "target" in err
    code, _, err = sparkhu(capsys, *home, "retention", "policies", "--set", '{"name": "x", "keep_days": -3}')
    assert code == 2 and "keep_days" in err
    code, _, err = sparkhu(capsys, *home, "retention", "policies", "--set", "{oops")
    assert code == 2 and "--set" in err
    code, _, err = sparkhu(capsys, *home, "retention", "apply", "--plan", "p-nope")
    assert code == 2 and "no retention plan 'p-nope'" in err
    code, _, err = sparkhu(capsys, *home, "retention", "undo", "r1-ab")
    assert code == 2 and "nothing in the trash" in err
    code, _, err = sparkhu(capsys, *home, "retention", "restore", "--start", "yesterday-ish")
    assert code == 2 and "--start" in err
