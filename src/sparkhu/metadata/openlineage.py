"""Lineage events in the OpenLineage format, to a file or an HTTP endpoint (``[metadata] openlineage``).

:func:`lineage_events` turns the runs of a :class:`~sparkhu.metadata.lineage.LineageGraph` into
OpenLineage ``RunEvent`` documents — one per run: the source's connector (source → topic), the lake
sink (topic → raw dataset), each pipeline task (its input and output datasets), each training run
(dataset → model versions) and the forecasts of each model version — so that Marquez, DataHub or
any other OpenLineage reader draws the same graph as ``sparkhu lineage``. :class:`LineageEmitter`
sends them: appended to a JSON-lines file, or POSTed one by one to an endpoint
(``http://host:5000/api/v1/lineage``).

Run ids are UUIDs (a run id that is not one is mapped to a stable UUIDv5 of it); the original run
id, status and counts travel in the run facet ``sparkhu``.

>>> from sparkhu.metadata.lineage import Edge, LineageGraph, Node
>>> graph = LineageGraph("home/power/P")
>>> _ = graph.add(Node("task:home_power/validate", "task", "home_power/validate",
...                    {"run_id": "5f0c6d1e8a2b4c3d9e0f1a2b3c4d5e6f", "status": "success"}))
>>> _ = graph.add(Node("dataset:raw/home_power", "dataset", "raw/home_power"))
>>> graph.link("dataset:raw/home_power", "task:home_power/validate", "reads")
>>> [event] = lineage_events(graph, namespace="sparkhu", lake="file:///lake")
>>> event["eventType"], event["job"]["name"], event["inputs"][0]["name"], event["run"]["runId"]
('COMPLETE', 'home_power/validate', 'raw/home_power', '5f0c6d1e-8a2b-4c3d-9e0f-1a2b3c4d5e6f')
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from sparkhu import __version__
from sparkhu.errors import BackendUnavailable, ConfigError
from sparkhu.metadata.lineage import LineageGraph, Node

PRODUCER = f"urn:sparkhu:{__version__}"
"""The ``producer`` of every event (a URI naming sparkhu and its version)."""
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
FACET_SCHEMA_URL = "urn:sparkhu:facets:run:1"
"""The ``_schemaURL`` of sparkhu's own run facet."""
STATUS_EVENT = {"success": "COMPLETE", "failed": "FAIL", "running": "START", "skipped": "COMPLETE"}
_RUN_NAMESPACE = uuid.UUID("8a0f3f0e-4c8e-4a43-9b39-6e9b7d1c2f10")


def lineage_events(
    graph: LineageGraph,
    *,
    namespace: str = "sparkhu",
    lake: str = "lake",
    bus: str = "bus",
    registry: str = "mlflow",
) -> list[dict[str, Any]]:
    """One OpenLineage ``RunEvent`` per run of ``graph``. Dataset namespaces: ``lake`` (the lake's
    root URI) for lake datasets, ``bus`` for topics, ``registry`` for model versions, ``predictions``
    for the prediction store (one dataset per series)."""
    producer_now = datetime.now(UTC).isoformat()
    by_id = {node.id: node for node in graph.nodes}
    incoming: dict[str, list[Node]] = {}
    outgoing: dict[str, list[Node]] = {}
    for edge in graph.edges:
        if edge.source in by_id and edge.target in by_id:
            incoming.setdefault(edge.target, []).append(by_id[edge.source])
            outgoing.setdefault(edge.source, []).append(by_id[edge.target])
    spaces = {"dataset": lake, "topic": bus, "model": registry}

    def dataset(node: Node) -> dict[str, Any]:
        if node.kind == "forecast":
            return {"namespace": "predictions", "name": f"{graph.series_id}/{node.id.split(':', 1)[1]}"}
        name = node.id.split(":", 1)[1]
        return {"namespace": spaces.get(node.kind, namespace), "name": name}

    events = []
    for node in graph.nodes:
        if node.kind not in ("source", "task", "train"):
            continue
        inputs = [dataset(n) for n in incoming.get(node.id, []) if n.kind in spaces]
        outputs = [dataset(n) for n in outgoing.get(node.id, []) if n.kind in spaces]
        events.append(_event(node, namespace, inputs, outputs, producer_now))
        if node.kind == "source":  # the lake sink: topic → raw dataset
            for topic in outgoing.get(node.id, []):
                raws = [dataset(n) for n in outgoing.get(topic.id, []) if n.kind == "dataset"]
                sink = Node(
                    f"sink:{topic.label}", "sink", f"sink:{topic.label}", {"run_id": f"sink:{topic.label}"}
                )
                events.append(_event(sink, namespace, [dataset(topic)], raws, producer_now))
    for model in graph.of_kind("model"):
        made = [n for n in outgoing.get(model.id, []) if n.kind == "forecast"]
        if made:
            job = Node(
                f"predict:{model.id}", "predict", f"forecast:{model.label}", {"run_id": f"predict:{model.id}"}
            )
            events.append(_event(job, namespace, [dataset(model)], [dataset(n) for n in made], producer_now))
    return _unique_sinks(events)


def _unique_sinks(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One sink event per topic when several sources publish to it."""
    seen, out = set(), []
    for event in events:
        key = (event["job"]["name"], event["run"]["runId"])
        if key not in seen:
            seen.add(key)
            out.append(event)
    return out


def _event(
    node: Node, namespace: str, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]], now: str
) -> dict[str, Any]:
    detail = node.detail
    run_id = str(detail.get("run_id") or node.id)
    status = str(detail.get("status") or "success")
    facet = {
        "_producer": PRODUCER,
        "_schemaURL": FACET_SCHEMA_URL,
        "run_id": run_id,
        "kind": node.kind,
        "status": status,
        **{
            k: detail[k]
            for k in ("rows_in", "rows_out", "runs", "interval_start", "interval_end", "error")
            if detail.get(k) is not None
        },
    }
    return {
        "eventType": STATUS_EVENT.get(status, "OTHER"),
        "eventTime": str(detail.get("finished_at") or detail.get("started_at") or now),
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": {"runId": run_uuid(run_id), "facets": {"sparkhu": facet}},
        "job": {
            "namespace": namespace,
            "name": _job_name(node),
        },
        "inputs": _dedup(inputs),
        "outputs": _dedup(outputs),
    }


def _job_name(node: Node) -> str:
    """The job of a run: the same for every run of it (a task's or training's record name)."""
    if node.kind == "source":
        return f"source:{node.label}"
    return str(node.detail.get("name") or node.label)


def _dedup(datasets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for d in datasets:
        key = (d["namespace"], d["name"])
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def job_event(
    event_type: str,
    *,
    job: str,
    run_id: str,
    namespace: str,
    event_time: datetime,
    inputs: Sequence[tuple[str, str]] = (),
    outputs: Sequence[tuple[str, str]] = (),
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One OpenLineage ``RunEvent`` of a job run as it happens (``START``, ``COMPLETE``, ``FAIL``):
    ``inputs`` and ``outputs`` as (namespace, name) datasets, ``detail`` in the run facet ``sparkhu``.

    >>> from datetime import UTC, datetime
    >>> event = job_event("START", job="train_series", run_id="train-1", namespace="sparkhu",
    ...                   event_time=datetime(2024, 1, 1, tzinfo=UTC), inputs=[("lake", "clean/home_power")])
    >>> event["eventType"], event["run"]["runId"] == run_uuid("train-1"), event["inputs"][0]["name"]
    ('START', True, 'clean/home_power')
    """
    if event_type not in ("START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"):
        raise ValueError(f"not an OpenLineage event type: {event_type!r}")
    facet = {"_producer": PRODUCER, "_schemaURL": FACET_SCHEMA_URL, "run_id": run_id, **(detail or {})}
    return {
        "eventType": event_type,
        "eventTime": event_time.isoformat(),
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": {"runId": run_uuid(run_id), "facets": {"sparkhu": facet}},
        "job": {"namespace": namespace, "name": job},
        "inputs": _dedup([{"namespace": ns, "name": name} for ns, name in inputs]),
        "outputs": _dedup([{"namespace": ns, "name": name} for ns, name in outputs]),
    }


def run_uuid(run_id: str) -> str:
    """The OpenLineage run id of a sparkhu run id: itself when it is a UUID (32 hex digits too),
    else a stable UUIDv5 of it.

    >>> run_uuid("train-1") == run_uuid("train-1") != run_uuid("train-2")
    True
    """
    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        return str(uuid.uuid5(_RUN_NAMESPACE, run_id))


class LineageEmitter:
    """Sends OpenLineage events to ``target``: a file path or ``file://`` URI (JSON lines, appended) or
    an ``http(s)://`` endpoint (one POST per event). An empty ``target`` sends nothing.

    >>> import json, tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     sent = LineageEmitter(f"{tmp}/events.jsonl").emit([{"eventType": "COMPLETE"}])
    ...     lines = Path(tmp, "events.jsonl").read_text().splitlines()
    >>> sent, json.loads(lines[0])
    (1, {'eventType': 'COMPLETE'})
    """

    def __init__(self, target: str, *, timeout_s: float = 10.0) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        if target.startswith(("http://", "https://")):
            self._url: str | None = target
            self._path: Path | None = None
        elif target.startswith("file://"):
            self._url, self._path = None, Path(target[len("file://") :])
        elif "://" in target:
            raise ConfigError(
                f"[metadata] openlineage = {target!r}: "
                "expected a file path, file:///path or an http(s):// URL"
            )
        else:
            self._url, self._path = None, Path(target) if target else None

    @property
    def enabled(self) -> bool:
        """Whether events go anywhere."""
        return bool(self.target)

    def emit(self, events: Sequence[dict[str, Any]]) -> int:
        """Send ``events``; returns how many. :class:`~sparkhu.errors.BackendUnavailable` (naming the
        target) when the file cannot be written or the endpoint does not take an event."""
        if not events or not self.enabled:
            return 0
        if self._path is not None:
            text = "".join(json.dumps(event, sort_keys=True) + "\n" for event in events)
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                with self._lock, self._path.open("a", encoding="utf-8") as out:
                    out.write(text)
            except OSError as exc:
                raise BackendUnavailable(
                    str(self._path), f"cannot append lineage events: {exc.strerror}"
                ) from exc
            return len(events)
        url = str(self._url)
        try:
            with httpx.Client(timeout=self.timeout_s) as client:
                for event in events:
                    answer = client.post(url, json=event)
                    if answer.status_code >= 300:
                        raise BackendUnavailable(
                            url, f"lineage endpoint answered {answer.status_code}: {answer.text[:200]}"
                        )
        except httpx.HTTPError as exc:
            raise BackendUnavailable(url, f"sending lineage events failed: {exc}") from exc
        return len(events)
