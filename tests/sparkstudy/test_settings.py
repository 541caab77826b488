"""Grid files: every mistake is one error naming the file, the setting and the field; placement."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkhu.errors import InputError
from sparkhu.sparkstudy.settings import Setting, WorkerState, load_grid, placement

GOOD = """
[prices]
vcpu_hour = 0.1

[[setting]]
name = "one"
executor_cores = 1
executor_memory = "512m"
executor_instances = 2

[[setting]]
name = "dyn"
executor_memory = "1g"
dynamic_allocation = true
"""


def test_a_good_grid(tmp_path: Path):
    path = tmp_path / "grid.toml"
    path.write_text(GOOD)
    grid = load_grid(path)
    assert [s.name for s in grid.settings] == ["one", "dyn"]
    assert grid.settings[1].executor_memory_mb == 1024 and grid.settings[1].dynamic_allocation
    assert grid.prices.vcpu_hour == 0.1 and grid.prices.gb_hour == 0.005
    conf = grid.settings[0].spark_conf()
    assert conf["spark.cores.max"] == "2" and conf["spark.executor.memory"] == "512m"
    assert grid.settings[1].spark_conf()["spark.dynamicAllocation.maxExecutors"] == "1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[[setting]]\nname = 'a'\nexecutor_cores = 0\n",
            r"setting\[0\]\.executor_cores: expected a whole number >= 1, got 0",
        ),
        (
            "[[setting]]\nname = 'a'\nexecutor_memory = 'lots'\n",
            r"setting\[0\]\.executor_memory: 'lots' is not a memory size",
        ),
        (
            "[[setting]]\nname = 'a'\n[[setting]]\nname = 'a'\n",
            r"setting\[1\]\.name: the name 'a' is used twice",
        ),
        ("[[setting]]\nname = 'a'\nexecutor_core = 2\n", r"setting\[0\]: unknown field 'executor_core'"),
        ("[[setting]]\nexecutor_cores = 2\n", r"setting\[0\]\.name: a non-empty string is required"),
        (
            "[[setting]]\nname = 'a'\ndynamic_allocation = 'yes'\n",
            r"setting\[0\]\.dynamic_allocation: expected true or false",
        ),
        ("[prices]\nvcpu_hour = -1\n[[setting]]\nname = 'a'\n", r"prices\.vcpu_hour: expected a number >= 0"),
        ("title = 'x'\n", r"grid: unknown key 'title'"),
        ("[prices]\n", r"setting: at least one \[\[setting\]\] is required"),
        ("[[setting]\n", r"not valid TOML"),
    ],
)
def test_malformed_grids_name_the_field(tmp_path: Path, text: str, message: str):
    path = tmp_path / "grid.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        load_grid(path)
    assert str(info.value).startswith(str(path))


def test_missing_and_bad_json_grid(tmp_path: Path):
    with pytest.raises(InputError, match="cannot read the grid file"):
        load_grid(tmp_path / "nope.toml")
    path = tmp_path / "grid.json"
    path.write_text('{"setting": [{"name": "a", "executor_instances": "two"}]}')
    with pytest.raises(InputError, match=r"setting\[0\]\.executor_instances: expected a whole number"):
        load_grid(path)


WORKERS = [WorkerState("w1", "127.0.0.1", 2, 2, 1024, 1024), WorkerState("w2", "127.0.0.1", 2, 1, 1024, 512)]


def test_placement_counts_executors_per_worker_and_names_the_short_resource():
    assert placement(Setting("a", 1, 512, 4), WORKERS).fits == 4
    partial = placement(Setting("b", 1, 512, 6), WORKERS)
    assert (partial.fits, partial.pending, partial.will_pend) == (4, 2, False)
    assert (
        partial.reason.startswith("2 of 6 executor(s) will pend")
        and "w1 holds 2 (cores bound)" in partial.reason
    )
    memory = placement(Setting("c", 1, 2048, 1), WORKERS)
    assert memory.will_pend and "w1 has 2 core(s) and 1024 MB memory (memory short)" in memory.reason
    cores = placement(Setting("d", 3, 512, 1), WORKERS)
    assert cores.will_pend and "w2 has 2 core(s) (cores short)" in cores.reason
    busy = placement(Setting("e", 2, 512, 2), WORKERS, free=True)
    assert busy.fits == 1 and "w2 has 1 free core(s) (cores short)" in busy.reason
    assert placement(Setting("f"), []).reason.endswith("no alive worker")
