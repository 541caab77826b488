"""The task graph is validated when built and ordered into parallel levels."""

from __future__ import annotations

import pytest

from sparkhu.errors import PipelineError
from sparkhu.pipeline import examples
from sparkhu.pipeline.base import Task
from sparkhu.pipeline.dag import Dag


def _task(name: str, src: str, dst: str) -> Task:
    return Task(name, examples.passthrough, {"points": src}, {"points": dst})


def test_levels_group_independent_tasks_and_order_dependents() -> None:
    dag = Dag(
        [
            _task("d", "b_out", "d_out"),
            _task("b", "a_out", "b_out"),
            _task("c", "a_out", "c_out"),
            _task("a", "raw", "a_out"),
        ]
    )
    assert [[t.name for t in level] for level in dag.levels] == [["a"], ["b", "c"], ["d"]]
    assert dag.downstream("a") == ["b", "c", "d"]
    assert dag.upstream(dag.task("d")) == ["b"]


def test_subset_keeps_downstream_and_turns_upstream_outputs_into_sources() -> None:
    dag = Dag([_task("a", "raw", "a_out"), _task("b", "a_out", "b_out"), _task("c", "b_out", "c_out")])
    sub = dag.subset(["b"])
    assert [t.name for t in sub.tasks] == ["b", "c"]
    assert "a_out" in sub.sources
    assert [t.name for t in dag.subset(["b"], with_downstream=False).tasks] == ["b"]
    with pytest.raises(PipelineError, match="no task 'zz'"):
        dag.subset(["zz"])


def test_cycle_is_rejected_naming_the_tasks() -> None:
    with pytest.raises(PipelineError, match="a, b form a cycle"):
        Dag([_task("a", "b_out", "a_out"), _task("b", "a_out", "b_out")])


def test_duplicate_output_is_rejected_naming_the_dataset() -> None:
    with pytest.raises(PipelineError, match="dataset 'x' is written by both 'a' and 'b'"):
        Dag([_task("a", "raw", "x"), _task("b", "raw", "x")])


def test_duplicate_task_name_is_rejected() -> None:
    with pytest.raises(PipelineError, match="task name 'a' is used twice"):
        Dag([_task("a", "raw", "x"), _task("a", "raw", "y")])


def test_missing_input_is_rejected_naming_task_and_dataset() -> None:
    with pytest.raises(PipelineError, match="task 'a' reads dataset 'nowhere'"):
        Dag([_task("a", "nowhere", "x")])


def test_writing_a_source_is_rejected() -> None:
    with pytest.raises(PipelineError, match="writes source dataset 'raw'"):
        Dag([_task("a", "raw", "raw")])


def test_unpicklable_lambda_is_rejected() -> None:
    task = Task("lam", lambda inp: inp, {"points": "raw"}, {"points": "x"})
    with pytest.raises(PipelineError, match="task 'lam': its function cannot be sent to worker processes"):
        Dag([task])


def test_unpicklable_params_are_rejected() -> None:
    task = Task("p", examples.scale, {"points": "raw"}, {"points": "x"}, params={"factor": lambda: 2})
    with pytest.raises(PipelineError, match="task 'p': its params cannot be pickled"):
        Dag([task])


def test_non_task_is_rejected() -> None:
    with pytest.raises(PipelineError, match="expected Task objects, got str"):
        Dag(["validate"])  # type: ignore[list-item]


def test_rejects_output_goes_to_quarantine_not_a_dataset() -> None:
    task = Task("v", examples.passthrough, {"points": "raw"}, {"points": "ok", "rejects": "quarantine"})
    dag = Dag([task, _task("w", "raw", "quarantine")])
    assert dag.producer == {"ok": "v", "quarantine": "w"}


def test_after_orders_tasks_linked_only_through_metadata() -> None:
    tasks = [_task("meta", "raw", "m_out"), _task("user", "raw", "u_out")]
    assert [[t.name for t in level] for level in Dag(tasks).levels] == [["meta", "user"]]
    dag = Dag(tasks, after={"user": ["meta"], "ghost": ["meta"]})
    assert [[t.name for t in level] for level in dag.levels] == [["meta"], ["user"]]
    assert dag.subset(["user"]).after == {"user": ("meta",), "ghost": ("meta",)}


def _meta_task(name: str, *, reads: tuple[str, ...] = (), makes: str | None = None) -> Task:
    return Task(
        name,
        examples.passthrough,
        {"points": "raw"},
        {"points": f"{name}_out"},
        meta_inputs=reads,
        meta_output=makes,
    )


def test_metadata_datasets_order_their_readers_after_their_producer() -> None:
    dag = Dag([_meta_task("user", reads=("sampling",)), _meta_task("period", makes="sampling")])
    assert [[t.name for t in level] for level in dag.levels] == [["period"], ["user"]]
    assert dag.upstream(dag.task("user")) == ["period"]
    assert dag.downstream("period") == ["user"]
    assert dag.producer["sampling"] == "period" and dag.metadata == {"sampling"}


def test_metadata_nobody_records_is_rejected_naming_task_and_dataset() -> None:
    with pytest.raises(PipelineError, match="task 'user' reads dataset 'sampling', which no task produces"):
        Dag([_meta_task("user", reads=("sampling",))])
    dag = Dag([_meta_task("user", reads=("sampling",))], sources=("raw", "sampling"))  # the catalog's
    assert dag.upstream(dag.task("user")) == []


def test_metadata_recorded_twice_is_rejected() -> None:
    with pytest.raises(PipelineError, match="dataset 'sampling' is written by both 'a' and 'b'"):
        Dag([_meta_task("a", makes="sampling"), _meta_task("b", makes="sampling")])


def test_a_name_is_either_frames_or_metadata() -> None:
    with pytest.raises(
        PipelineError, match="dataset 'a_out' is frames for task 'a' but metadata for task 'b'"
    ):
        Dag([_meta_task("a"), _meta_task("b", reads=("a_out",))])


def test_subset_turns_metadata_of_left_out_tasks_into_sources() -> None:
    dag = Dag([_meta_task("period", makes="sampling"), _meta_task("user", reads=("sampling",))])
    sub = dag.subset(["user"])
    assert [t.name for t in sub.tasks] == ["user"] and "sampling" in sub.sources
    assert [t.name for t in dag.subset(["period"]).tasks] == ["period", "user"]
