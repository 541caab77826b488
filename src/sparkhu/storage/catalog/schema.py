"""The catalog's tables, as SQLAlchemy Core (no ORM).

Every timestamp is an integer: microseconds since the Unix epoch, UTC (``*_ts``, ``*_at``).
Integers compare and index the same on SQLite and PostgreSQL, convert to Arrow
``timestamp[us, UTC]`` without copying, and keep range queries on an index
(``WHERE series_id = ? AND target_ts >= ? AND target_ts < ?``). JSON columns are ``JSONB``
on PostgreSQL and JSON text on SQLite.

This module describes the *current* schema, which the queries use; the migrations under
``migrations/versions`` build it step by step (a test checks that both agree).

>>> sorted(metadata.tables)[:4]
['audit_log', 'champion_history', 'control_actions', 'datasets']
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
"""A JSON document: ``JSONB`` on PostgreSQL, JSON text on SQLite."""
TS = sa.BigInteger
"""A timestamp: microseconds since the Unix epoch, UTC."""
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid on SQLite

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("config", JSON, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

series = sa.Table(
    "series",
    metadata,
    sa.Column("series_id", sa.String, primary_key=True),
    sa.Column("source", sa.String, nullable=False, index=True),
    sa.Column("measurement", sa.String, nullable=False),
    sa.Column("field", sa.String, nullable=False),
    sa.Column("unit", sa.String),
    sa.Column("period_s", sa.Float),
    sa.Column("regular", sa.Boolean),
    sa.Column("first_ts", TS),
    sa.Column("last_ts", TS),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("tags", JSON, nullable=False),
    sa.Column("value_min", sa.Float),
    sa.Column("value_max", sa.Float),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("description", sa.Text),
)

series_tags = sa.Table(
    "series_tags",
    metadata,
    sa.Column("series_id", sa.String, primary_key=True),
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("value", sa.String, nullable=False),
    sa.Index("ix_series_tags_key_value", "key", "value", "series_id"),
    sqlite_with_rowid=False,
)
"""The user tags of ``series.tags`` one row per tag, kept in step by the catalog: the index that
answers a search by tag without a scan of every series' JSON."""

series_words = sa.Table(
    "series_words",
    metadata,
    sa.Column("word", sa.String, primary_key=True),
    sa.Column("series_id", sa.String, primary_key=True),
    sa.Index("ix_series_words_series", "series_id"),
    sqlite_with_rowid=False,
)
"""The words of each series' description (lower case, letters and digits), kept in step by the
catalog: a text search is a range scan of this index (``word`` starting with the searched word)."""

series_links = sa.Table(
    "series_links",
    metadata,
    sa.Column("series_id", sa.String, primary_key=True),
    sa.Column("upstream_id", sa.String, primary_key=True),
    sa.Index("ix_series_links_upstream", "upstream_id"),
    sqlite_with_rowid=False,
)
"""Declared lineage between series (a derived series and the series it is computed from)."""

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("zone", sa.String, primary_key=True),
    sa.Column("dataset", sa.String, primary_key=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

partitions = sa.Table(
    "partitions",
    metadata,
    sa.Column("zone", sa.String, primary_key=True),
    sa.Column("dataset", sa.String, primary_key=True),
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("files", sa.Integer, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("first_ts", TS),
    sa.Column("last_ts", TS),
    sa.Column("run_id", sa.String),
    sa.Index("ix_partitions_run_id", "run_id"),
)
"""One row per lake partition: files, rows and bytes as written, the time range of its rows and
the run that wrote it last (``run_id``: a run of ``runs``, or a writer's name such as
``sink:<topic>``)."""

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String, primary_key=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("finished_at", TS),
    sa.Column("series_id", sa.String),
    sa.Column("interval_start", TS),
    sa.Column("interval_end", TS),
    sa.Column("rows_in", sa.BigInteger),
    sa.Column("rows_out", sa.BigInteger),
    sa.Column("params", JSON, nullable=False),
    sa.Column("error", sa.Text),
    sa.Index("ix_runs_started_at", "started_at"),
    sa.Index("ix_runs_kind_name_started_at", "kind", "name", "started_at"),
    sa.Index("ix_runs_series_id", "series_id"),
)

models = sa.Table(
    "models",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("version", sa.String, primary_key=True),
    sa.Column("series_id", sa.String, index=True),
    sa.Column("uri", sa.String, nullable=False),
    sa.Column("metrics", JSON, nullable=False),
    sa.Column("aliases", JSON, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("run_id", sa.String),
    sa.Column("feature_view", sa.String),
    sa.Index("ix_models_run_id", "run_id"),
    sa.Column("feature_view_version", sa.Integer),
)
"""``run_id``: the catalog run (training) that made the version; ``feature_view`` and its version:
the model inputs it was trained on (:mod:`sparkhu.metadata.features`)."""

model_series = sa.Table(
    "model_series",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("version", sa.String, primary_key=True),
    sa.Column("series_id", sa.String, primary_key=True),
    sa.Index("ix_model_series_series", "series_id"),
    sqlite_with_rowid=False,
)
"""The series a model version was trained on when it is not one series' own (a global model)."""

feature_views = sa.Table(
    "feature_views",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("body", JSON, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("created_at", TS, nullable=False),
)
"""Named, versioned definitions of model inputs; a version is never changed once written."""

forecasts_raw = sa.Table(
    "forecasts_raw",
    metadata,
    sa.Column("series_id", sa.String, primary_key=True),
    sa.Column("target_ts", TS, primary_key=True),
    sa.Column("origin_ts", TS, primary_key=True),
    sa.Column("model", sa.String, primary_key=True),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("lower", sa.Float),
    sa.Column("upper", sa.Float),
    sa.Index("ix_forecasts_raw_series_origin", "series_id", "origin_ts"),
    sqlite_with_rowid=False,
)
"""Primary key (series_id, target_ts, origin_ts, model): unique per forecast, and the range
index for ``raw(series, start, end)`` ordered by target then origin."""

forecasts_blended = sa.Table(
    "forecasts_blended",
    metadata,
    sa.Column("series_id", sa.String, primary_key=True),
    sa.Column("target_ts", TS, primary_key=True),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("lower", sa.Float),
    sa.Column("upper", sa.Float),
    sa.Column("updates", sa.Integer, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sqlite_with_rowid=False,
)

online_state = sa.Table(
    "online_state",
    metadata,
    sa.Column("owner", sa.String, primary_key=True),
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sqlite_with_rowid=False,
)
"""Checkpoints of online predictors (``owner`` = ``<group>/<topic>``): one opaque value per key
(a series' window and model, the consumed offsets), written in the transaction of the forecasts
they produced (:class:`~sparkhu.storage.predictions.PredictionStore`)."""

online_scores = sa.Table(
    "online_scores",
    metadata,
    sa.Column("series_id", sa.String, primary_key=True),
    sa.Column("model", sa.String, primary_key=True),
    sa.Column("target_ts", TS, primary_key=True),
    sa.Column("origin_ts", TS, primary_key=True),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("actual", sa.Float, nullable=False),
    sa.Column("forecast", sa.Float, nullable=False),
    sa.Column("error", sa.Float, nullable=False),
    sa.Column("scale", sa.Float),
    sa.Column("covered", sa.Boolean),
    sa.Index("ix_online_scores_series_target", "series_id", "target_ts"),
    sqlite_with_rowid=False,
)
"""One row per raw forecast whose target has arrived (:mod:`sparkhu.online.scoring`): primary key
(series, model, target, origin) = the forecast's, so scoring again is a no-op. ``scale`` is the
series' in-sample seasonal-naive MAE when scored (MASE's denominator), ``covered`` whether the
interval held the actual (null without one)."""

drift_events = sa.Table(
    "drift_events",
    metadata,
    sa.Column("series_id", sa.String, primary_key=True),
    sa.Column("ts", TS, primary_key=True),
    sa.Column("kind", sa.String, primary_key=True),
    sa.Column("model", sa.String, primary_key=True),
    sa.Column("detector", sa.String, primary_key=True),
    sa.Column("statistic", sa.Float, nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("detected_at", TS, nullable=False),
    sa.Index("ix_drift_events_ts", "ts"),
    sqlite_with_rowid=False,
)
"""Drift detected on a series (:mod:`sparkhu.online.drift`): ``kind`` level / variance (the input)
or error (the online errors of ``model``; ``""`` for the input's kinds), at the point ``ts``."""

series_alpha = sa.Table(
    "series_alpha",
    metadata,
    sa.Column("series_id", sa.String, primary_key=True),
    sa.Column("alpha", sa.Float, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

policies = sa.Table(
    "policies",
    metadata,
    sa.Column("kind", sa.String, primary_key=True),
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("body", JSON, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

watermarks = sa.Table(
    "watermarks",
    metadata,
    sa.Column("owner", sa.String, primary_key=True),
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("position", JSON, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("at", TS, nullable=False, index=True),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("target", sa.String, nullable=False),
    sa.Column("detail", JSON, nullable=False),
    sa.Index("ix_audit_log_target", "target"),
)
"""Append-only: the catalog offers no way to change or delete an entry."""

champion_history = sa.Table(
    "champion_history",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("series_id", sa.String, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("previous_version", sa.Integer),
    sa.Column("event", sa.String, nullable=False),
    sa.Column("at", TS, nullable=False),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("numbers", JSON, nullable=False),
    sa.Column("action_id", sa.BigInteger),
    sa.Index("ix_champion_history_name", "name", "id"),
    sa.Index("ux_champion_history_action", "action_id", "event", unique=True),
)
"""Append-only: which version became a model's champion, when, by whom and why (the row after it says
until when). One row per action and event at most, so a step replayed after a crash writes none."""

control_actions = sa.Table(
    "control_actions",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("series_id", sa.String, nullable=False),
    sa.Column("policy", sa.String),
    sa.Column("trigger", sa.String, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("champion_version", sa.Integer),
    sa.Column("challenger_version", sa.Integer),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("detail", JSON, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Index("ix_control_actions_series", "series_id", "id"),
    sa.Index("ix_control_actions_state", "state"),
)
"""The controller's retrain → shadow → promote → swap → watch cycles, one row each, moved from state to
state by compare-and-set, so a controller killed at any step resumes the cycle where it stood."""
