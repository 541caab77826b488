"""The feature metadata store: catalog queries over 100,000 series and 1,000,000 partitions (x scale),
on SQLite and PostgreSQL, each against a hand-written SQL query of the same answer.

The catalog is built in bulk (the DB-API's ``executemany`` on SQLite, ``COPY`` on PostgreSQL): 1,000
datasets of 100 series each; per dataset its raw data and four pipeline outputs of 200 daily
partitions (1,000,000 partitions), the newest task-day run of four tasks and each series' own run
records of them, a model version per series, one global model version per dataset linked to its
100 series, 20 forecasts for 1 series in 100 and ten retention actions per dataset in the audit
log; three tags and a description per series. Then, for random inputs, interleaved (ours, then the
peer, then the peer, then ours):

* **search by tag**: ``Catalog.search_series(tags={"room": ...})`` (about 1,000 series carry each
  value; the first 100 by id) against ``SELECT ... JOIN series_tags ... ORDER BY ... LIMIT 100``;
* **search by text**: ``search_series(text=...)`` (a word of one description, any case) against
  ``SELECT ... WHERE lower(series_id) LIKE ... OR lower(description) LIKE ...``;
* **lineage**: ``metadata.lineage`` of one series (facts and graph) against the same facts read by
  hand-written SQL on a plain DB-API connection.

Target: p95 ≤ 50 ms on each backend. ``ratio`` = the peer's p95 / ours (> 1: ours is faster).
PostgreSQL: the server at 127.0.0.1:5432 (trust, user postgres); the bench creates its own database
and drops it.
"""

from __future__ import annotations

import functools
import json
import random
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import Result
from sparkhu.metadata.lineage import lineage
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.catalog.records import words

DATASETS = 1000
SERIES_PER_DATASET = 100
OUTPUTS = ("raw/{d}", "validated/{d}", "clean/{d}.deduped", "clean/{d}", "features/{d}.normalized")
TASKS = ("validate", "dedup", "handle", "normalize")
ROOMS = 100
AUDITED_DAYS = 10
SAMPLES = 200
TARGET_MS = 50.0
DAY_US = 86_400_000_000
T0 = 1_700_000_000_000_000


def _rows(scale: float) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows (tuples in column order) for ``scale``."""
    datasets = max(2, round(DATASETS * scale))
    days = 200
    rows: dict[str, list[tuple[Any, ...]]] = {
        k: []
        for k in (
            "series",
            "series_tags",
            "series_words",
            "datasets",
            "partitions",
            "runs",
            "models",
            "forecasts_raw",
            "sources",
            "model_series",
            "audit_log",
        )
    }
    for d in range(datasets):
        source, name = f"site{d:04d}", f"site{d:04d}_power"
        rows["sources"].append(
            (f"meter{d:04d}", "file", json.dumps({"source": source, "measurement": "power"}), T0, T0)
        )
        task_runs = {}
        for t, task in enumerate(TASKS):
            run_id = uuid.UUID(int=d * 16 + t).hex
            task_runs[task] = run_id
            params = {
                "dataset": name,
                "inputs": [OUTPUTS[t].format(d=name)],
                "outputs": [OUTPUTS[t + 1].format(d=name)],
            }
            rows["runs"].append(
                (
                    run_id,
                    "pipeline",
                    f"{name}/{task}",
                    "success",
                    T0 + t,
                    T0 + t + 1,
                    None,
                    T0 - DAY_US,
                    T0,
                    100,
                    100,
                    json.dumps(params),
                    None,
                )
            )
        for out in OUTPUTS:
            zone, ds = out.format(d=name).split("/")
            rows["datasets"].append((zone, ds, T0, T0))
            writer = "ingest:meter" if zone == "raw" else task_runs[TASKS[min(OUTPUTS.index(out) - 1, 3)]]
            for day in range(days):
                start = T0 - (days - day) * DAY_US
                rows["partitions"].append(
                    (
                        zone,
                        ds,
                        f"date={day:05d}",
                        1,
                        144_000,
                        1_000_000,
                        T0,
                        start,
                        start + DAY_US - 60_000_000,
                        writer,
                    )
                )
        train = f"train-{d:06d}"
        rows["runs"].append(
            (
                train,
                "train",
                "train_series",
                "success",
                T0 + 10,
                T0 + 11,
                None,
                None,
                None,
                1,
                1,
                json.dumps({"dataset": f"clean/{name}"}),
                None,
            )
        )
        # one global model version per dataset, trained on its 100 series; retention's audit entries
        rows["models"].append(
            (
                "sparkhu.global.nlinear",
                str(d + 1),
                None,
                f"models:/g/{d + 1}",
                "{}",
                "[]",
                T0 + 12,
                train,
                None,
                None,
            )
        )
        for day in range(AUDITED_DAYS):
            target = f"raw/{name}/date={day:05d}"
            audit_id = len(rows["audit_log"]) + 1
            rows["audit_log"].append((audit_id, T0, "retention", "delete", target, '{"rows": 144000}'))
            rows["audit_log"].append((audit_id + 1, T0, "retention", "run.start", f"plan/p{d}", "{}"))
        for k in range(SERIES_PER_DATASET):
            sid = f"{source}/power/meter{k:03d}"
            rows["model_series"].append(("sparkhu.global.nlinear", str(d + 1), sid))
            n = d * SERIES_PER_DATASET + k
            tags = {"room": f"room{n % ROOMS:03d}", "floor": str(n % 7), "site": source}
            rows["series"].append(
                (
                    sid,
                    source,
                    "power",
                    f"meter{k:03d}",
                    "W",
                    60.0,
                    True,
                    T0 - days * DAY_US,
                    T0,
                    288_000,
                    json.dumps(tags),
                    None,
                    None,
                    T0,
                    f"Meter {k} of site {d}, serial SN{n:07d}x",
                )
            )
            rows["series_tags"].extend((sid, key, value) for key, value in tags.items())
            rows["series_words"].extend((word, sid) for word in words(f"{sid} {rows['series'][-1][-1]}"))
            for t, task in enumerate(TASKS):
                rows["runs"].append(
                    (
                        f"{task_runs[task]}-{k}",
                        "pipeline.series",
                        f"{name}/{task}",
                        "success",
                        T0 + t,
                        T0 + t + 1,
                        sid,
                        T0 - DAY_US,
                        T0,
                        1440,
                        1440,
                        "{}",
                        None,
                    )
                )
            model = "sparkhu." + sid.replace("/", ".")
            rows["models"].append(
                (model, "1", sid, f"models:/{model}/1", '{"mase": 0.9}', "[]", T0 + 11, train, None, None)
            )
            if n % 100 == 0:
                rows["forecasts_raw"].extend(
                    (sid, T0 + s * 60_000_000, T0, "ses@v1", s, 1.0, 0.5, 1.5) for s in range(1, 21)
                )
    return rows


COLUMNS = {
    "sources": "name, kind, config, created_at, updated_at",
    "series": "series_id, source, measurement, field, unit, period_s, regular, first_ts, last_ts, count, "
    "tags, value_min, value_max, updated_at, description",
    "series_tags": "series_id, key, value",
    "series_words": "word, series_id",
    "datasets": "zone, dataset, created_at, updated_at",
    "partitions": "zone, dataset, key, files, rows, bytes, updated_at, first_ts, last_ts, run_id",
    "runs": "run_id, kind, name, status, started_at, finished_at, series_id, interval_start, interval_end, "
    "rows_in, rows_out, params, error",
    "models": "name, version, series_id, uri, metrics, aliases, created_at, run_id, feature_view, "
    "feature_view_version",
    "forecasts_raw": "series_id, target_ts, origin_ts, model, step, value, lower, upper",
    "model_series": "name, version, series_id",
    "audit_log": "id, at, actor, action, target, detail",
}


def _load(catalog: Catalog, rows: dict[str, list[tuple[Any, ...]]]) -> float:
    """Bulk-insert ``rows`` into a migrated catalog; seconds."""
    began = time.perf_counter()
    raw = catalog.engine.raw_connection()
    try:
        cur = raw.cursor()
        sqlite = catalog.engine.dialect.name == "sqlite"
        if sqlite:
            cur.execute("BEGIN")
        for table, data in rows.items():
            cols = COLUMNS[table]
            if sqlite:
                marks = ", ".join("?" for _ in cols.split(","))
                cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", data)
            else:
                with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                    for row in data:
                        copy.write_row(row)
        if sqlite:
            cur.execute("COMMIT")
            cur.execute("ANALYZE")
        else:
            raw.commit()
            cur.execute("ANALYZE")
            raw.commit()
    finally:
        raw.close()
    return time.perf_counter() - began


# ---------------------------------------------------------------------- the peer: hand-written SQL


class Peer:
    """The same answers by hand-written SQL on one DB-API connection."""

    def __init__(self, catalog: Catalog) -> None:
        self.raw = catalog.engine.raw_connection()
        self.sqlite = catalog.engine.dialect.name == "sqlite"
        self.p = "?" if self.sqlite else "%s"

    def close(self) -> None:
        self.raw.close()

    def q(self, sql: str, *args: Any) -> list[Any]:
        cur = self.raw.cursor()
        cur.execute(sql.replace("?", self.p), args)
        out = cur.fetchall()
        self.raw.commit()
        return out

    def by_tag(self, key: str, value: str) -> list[Any]:
        return self.q(
            "SELECT s.* FROM series s JOIN series_tags t ON t.series_id = s.series_id "
            "WHERE t.key = ? AND t.value = ? ORDER BY s.series_id LIMIT 100",
            key,
            value,
        )

    def by_text(self, text: str) -> list[Any]:
        """A substring search, as one would write it by hand (the same answers for a whole word)."""
        like = f"%{text.lower()}%"
        return self.q(
            "SELECT * FROM series WHERE lower(series_id) LIKE ? OR lower(description) LIKE ? "
            "ORDER BY series_id LIMIT 100",
            like,
            like,
        )

    def lineage(self, sid: str) -> list[Any]:
        source, measurement, _ = sid.split("/")
        name = f"{source}_{measurement}"
        out = [self.q("SELECT * FROM series WHERE series_id = ?", sid), self.q("SELECT * FROM sources")]
        out.append(self.q("SELECT * FROM watermarks"))
        out.append(
            self.q(
                "SELECT kind, name, max(started_at), count(*) FROM runs WHERE series_id = ? "
                "GROUP BY kind, name",
                sid,
            )
        )
        tasks = self.q(
            "SELECT * FROM runs WHERE kind = 'pipeline' AND name >= ? AND name < ? "
            "ORDER BY name, started_at DESC",
            name + "/",
            name + "0",
        )
        out.append(tasks)
        models = self.q("SELECT * FROM models WHERE series_id = ?", sid)
        models += self.q(
            "SELECT m.* FROM model_series s JOIN models m ON m.name = s.name AND m.version = s.version "
            "WHERE s.series_id = ?",
            sid,
        )
        out.append(models)
        out.append(self.q("SELECT * FROM runs WHERE run_id = ?", models[0][7] if models else ""))
        out.append(
            self.q(
                "SELECT model, count(*), min(origin_ts), max(origin_ts), max(target_ts) FROM forecasts_raw "
                "WHERE series_id = ? GROUP BY model",
                sid,
            )
        )
        names = [o.format(d=name).split("/") for o in OUTPUTS]
        for zone, ds in names:
            out.append(
                self.q(
                    "SELECT count(*), sum(files), sum(rows), sum(bytes), min(first_ts), max(last_ts), "
                    "max(updated_at) FROM partitions WHERE zone = ? AND dataset = ?",
                    zone,
                    ds,
                )
            )
        for zone, ds in names:  # a range of the target index per dataset
            out.append(
                self.q(
                    "SELECT * FROM audit_log WHERE target >= ? AND target < ? "
                    "AND action NOT IN ('run.start', 'run.finish', 'skip') ORDER BY id DESC LIMIT 20",
                    f"{zone}/{ds}/",
                    f"{zone}/{ds}0",
                )
            )
        out.append(self.q("SELECT upstream_id FROM series_links WHERE series_id = ?", sid))
        out.append(self.q("SELECT series_id FROM series_links WHERE upstream_id = ?", sid))
        return out


# ---------------------------------------------------------------------- measuring


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] * 1000 if len(values) > 1 else values[0] * 1000


def _race(
    ours: Callable[[Any], object], peer: Callable[[Any], object], inputs: list[Any]
) -> tuple[list[float], list[float]]:
    """Latencies of ``ours`` and ``peer`` over ``inputs``, alternating which goes first."""
    a: list[float] = []
    b: list[float] = []
    for i, arg in enumerate(inputs):
        pair = [(ours, a), (peer, b)] if i % 2 == 0 else [(peer, b), (ours, a)]
        for fn, into in pair:
            began = time.perf_counter()
            fn(arg)
            into.append(time.perf_counter() - began)
    return a, b


@contextmanager
def _backends(tmp: Path) -> Iterator[list[tuple[str, str]]]:
    """(name, uri) of a SQLite file and, when the server answers, a PostgreSQL database of the bench."""
    uris = [("sqlite", f"sqlite:///{tmp / 'catalog.db'}")]
    admin = None
    name = f"sparkhu_bench_meta_{uuid.uuid4().hex[:8]}"
    try:
        import psycopg

        admin = psycopg.connect(
            host="127.0.0.1",
            port=5432,
            user="postgres",
            dbname="postgres",
            autocommit=True,
            connect_timeout=5,
        )
        admin.execute(f'CREATE DATABASE "{name}"')
        uris.append(("postgresql", f"postgresql://postgres@127.0.0.1:5432/{name}"))
    except Exception as exc:  # the bench reports what it could not measure
        print(f"PostgreSQL not measured: {exc}")
        admin = None
    try:
        yield uris
    finally:
        if admin is not None:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()


def run(scale: float = 1.0) -> list[Result]:
    import tempfile

    rows = _rows(scale)
    series_ids = [r[0] for r in rows["series"]]
    rng = random.Random(7)
    results: list[Result] = []
    size = f"{len(series_ids):,} series, {len(rows['partitions']):,} partitions"
    with tempfile.TemporaryDirectory(prefix="sparkhu-bench-meta-") as tmp, _backends(Path(tmp)) as backends:
        for backend, uri in backends:
            with Catalog(uri) as catalog:
                load_s = _load(catalog, rows)
                results.append(Result("metadata", f"{backend}: bulk build", load_s, "s", detail=size))
                peer = Peer(catalog)
                try:
                    rooms = [f"room{rng.randrange(ROOMS):03d}" for _ in range(SAMPLES)]
                    serials = [f"sn{rng.randrange(len(series_ids)):07d}X" for _ in range(SAMPLES)]
                    picks = [rng.choice(series_ids) for _ in range(SAMPLES)]
                    # the answers agree before anything is timed
                    assert [s.series_id for s in catalog.search_series(tags={"room": rooms[0]})] == [
                        r[0] for r in peer.by_tag("room", rooms[0])
                    ]
                    assert [s.series_id for s in catalog.search_series(text=serials[0])] == [
                        r[0] for r in peer.by_text(serials[0])
                    ]
                    cases: list[tuple[str, Callable[[Any], object], Callable[[Any], object], list[Any]]] = [
                        (
                            "search by tag",
                            lambda room: catalog.search_series(tags={"room": room}),
                            functools.partial(peer.by_tag, "room"),
                            rooms,
                        ),
                        (
                            "search by text",
                            lambda word: catalog.search_series(text=word),
                            peer.by_text,
                            serials,
                        ),
                        ("lineage of one series", lambda sid: lineage(catalog, sid), peer.lineage, picks),
                    ]
                    for metric, ours, theirs, inputs in cases:
                        a, b = _race(ours, theirs, inputs)
                        p95, peer95 = _p95(a), _p95(b)
                        results.append(
                            Result(
                                "metadata",
                                f"{backend}: {metric} p95",
                                p95,
                                "ms",
                                target=f"<= {TARGET_MS:g} ms",
                                met=p95 <= TARGET_MS,
                                detail=f"{size}; median {statistics.median(a) * 1000:.1f} ms, "
                                f"peer p95 {peer95:.1f} ms",
                                peer="hand-written SQL",
                                ratio=peer95 / p95,
                            )
                        )
                finally:
                    peer.close()
    return results
