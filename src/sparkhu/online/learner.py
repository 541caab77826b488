"""The online predictor: a consumer-group member that keeps per-series models current and forecasting.

An :class:`OnlinePredictor` plugs its models into the shared consumer loop
(:mod:`sparkhu.connectors.consume`). Each :meth:`~OnlinePredictor.run_once` polls a batch of
Arrow messages and handles them one message at a time: it appends the message's points to
per-series sliding windows (:mod:`sparkhu.online.windows`), and for every series whose window
advanced it updates the series' model with the new points (warm start: a model is fitted
once, on the window, when the series first has ``min_points`` points, then only
``update``-d) and forecasts ``horizon`` steps at ``last ts + k·step_s``. One
:data:`~sparkhu.storage.predictions.FORECAST_SCHEMA` table for the whole batch goes to the
prediction store, which blends overlapping forecasts (``S = alpha*yhat + (1-alpha)*S_prev``).
Only then are the offsets committed. A write that fails is retried, from memory, by the next
round.

**Crash consistency.** The forecasts depend only on the messages (one origin per series per
message), never on how polls cut the stream into batches, and the predictor's state — the
windows, the models and the next offset of every partition — is saved as a checkpoint in the
same transaction as the forecasts it produced
(:class:`~sparkhu.storage.predictions.Checkpoint`; only the series that changed). On start the
predictor restores its checkpoint, and messages delivered again below the checkpoint's
offsets (stored, but not yet committed on the bus when the process died) are committed
without being absorbed twice. So after a crash, at any point, the prediction store ends up
exactly as after an uninterrupted run over the same messages.

Models are swapped through a queue: any thread (the champion server,
:mod:`sparkhu.online.champions`) calls :meth:`~OnlinePredictor.queue_swap`; the predictor's
own loop installs the queued models between batches (:meth:`~OnlinePredictor.apply_swaps`,
the first step of every round), bringing each up to date with the window's points newer
than its training. No other thread touches the windows or the models.

A message that is not a table of points is logged, quarantined in the lake when one is
given, and committed past. On a first start (no checkpoint, or one saved with another model
or window), with a lake, the first batch refills the windows with the last ``window`` points
of every series that are older than what the bus delivers (the lake sink, another group, may
be ahead: its newer points come again from the bus and are forecast from), and the models are
fitted, so forecasts resume with the first new points. Latency is measured per message, from
its bus timestamp (when it was produced) to the moment its forecasts were stored.

>>> import tempfile
>>> from sparkhu.forecast.models import make_model
>>> from sparkhu.series import points
>>> from sparkhu.storage.catalog import Catalog
>>> from sparkhu.stream.codecs import publish_points
>>> from sparkhu.stream.sqlite import SqliteBus
>>> naive = make_model("seasonal_naive", season_length=1)
>>> with tempfile.TemporaryDirectory() as tmp:
...     with SqliteBus(f"sqlite:///{tmp}/bus.db") as bus, Catalog(f"sqlite:///{tmp}/c.db") as catalog:
...         store = PredictionStore(catalog.engine)
...         online = OnlinePredictor(bus, "points", store, horizon=3, min_points=2)
...         _ = publish_points(bus, "points", points("home/power/P", [0, 60_000_000], [1.0, 2.0]))
...         consumed = online.run_once(timeout=1.0)
...         forecasts = online.stats().forecasts
...         blended = store.blended("home/power/P").column("target_ts").cast("int64").to_pylist()
...         online.queue_swap("home/power/P", naive, label="naive@v1")  # from any thread
...         _ = publish_points(bus, "points", points("home/power/P", [120_000_000], [7.0]))
...         _ = online.run_once(timeout=1.0)  # installs the swap, then forecasts with it
...         online.close()
...         models = store.raw("home/power/P").column("model").to_pylist()
>>> consumed, forecasts, blended
(1, 3, [120000000, 180000000, 240000000])
>>> online.stats().forecasts, online.stats().swaps, sorted(set(models))
(6, 1, ['naive@v1', 'ses'])
>>> online.models["home/power/P"].forecast(2).tolist()  # fitted on the window, then updated
[7.0, 7.0]
"""

from __future__ import annotations

import json
import logging
import pickle
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkhu.connectors.consume import Batch, ConsumerLoop
from sparkhu.errors import ForecastError, NotFoundError, SparkhuError
from sparkhu.forecast.bank import ModelBank
from sparkhu.forecast.base import Forecaster
from sparkhu.forecast.models import make_model
from sparkhu.forecast.predict import update_since
from sparkhu.online.scorer import OnlineScorer
from sparkhu.online.windows import NewPoints, Windows
from sparkhu.series import series_tail
from sparkhu.storage.lake import Lake
from sparkhu.storage.predictions import FORECAST_SCHEMA, Checkpoint, PredictionStore
from sparkhu.stream.base import Bus, Consumer
from sparkhu.timeaxis import US_PER_S, from_us

log = logging.getLogger(__name__)

_OFFSET = "@offset/"
"""Checkpoint key prefix of a partition's next offset (``@offset/3``): each member of the group
saves only its own partitions. Series ids (``a/b/c``) never start with ``@``."""
SHADOW_SUFFIX = "/shadow"
"""Appended to a shadow model's label in the ``model`` column of its forecasts (``ses@v5/shadow``):
stored raw, never blended, compared with the champion's by the controller."""
_SETTINGS = "@settings"
"""Checkpoint key of what the saved state depends on: another model or window starts afresh."""


@dataclass(frozen=True)
class OnlineStats:
    """Counters of an :class:`OnlinePredictor` since it was created (of committed batches)."""

    batches: int
    messages: int
    points: int
    late_points: int
    malformed: int
    forecasts: int
    series: int
    latency_p50_ms: float
    latency_p99_ms: float
    swaps: int
    """Queued models installed."""


class _Swap(NamedTuple):
    series_id: str
    model: Forecaster
    label: str | None
    trained_until_us: int | None


class _Shadow(NamedTuple):
    series_id: str
    model: Forecaster | None
    label: str
    trained_until_us: int | None


class OnlinePredictor:
    """Forecast every series of a topic as its points arrive; see the module docstring.

    ``model``/``model_params``: registry name and hyperparameters of the per-series model.
    ``window``: points kept per series; ``min_points``: points a series needs before its
    model is fitted (default ``max(2, window // 2)``). ``horizon`` forecasts ``step_s``
    seconds apart. ``alpha``: blending weight handed to the prediction store. ``coverage``:
    prediction interval stored as lower/upper (``None``: none). ``lake``/``dataset``/``zone``:
    where to refill windows from on start and to quarantine malformed messages
    (``dataset`` defaults to the topic name). ``max_messages``: messages per poll at most.
    ``scorer``: scores the forecasts whose targets arrive and watches drift, in the transaction
    of the forecasts (:class:`~sparkhu.online.scorer.OnlineScorer`).
    """

    def __init__(
        self,
        bus: Bus,
        topic: str,
        predictions: PredictionStore,
        *,
        group: str = "online",
        model: str = "ses",
        model_params: Mapping[str, Any] | None = None,
        window: int = 60,
        horizon: int = 20,
        step_s: float = 60,
        alpha: float = 0.6,
        min_points: int | None = None,
        coverage: float | None = 0.95,
        lake: Lake | None = None,
        dataset: str | None = None,
        zone: str = "raw",
        max_messages: int = 1000,
        latency_samples: int = 100_000,
        scorer: OnlineScorer | None = None,
    ) -> None:
        where = f"online predictor for {topic}"
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ForecastError(f"{where}: horizon must be a positive integer, got {horizon!r}")
        if not step_s > 0:
            raise ForecastError(f"{where}: step_s must be > 0 seconds, got {step_s!r}")
        if not 0.0 < alpha <= 1.0:
            raise ForecastError(f"{where}: blending alpha must be in (0, 1], got {alpha!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 2:
            raise ForecastError(f"{where}: window must be an integer >= 2 points, got {window!r}")
        self.windows = Windows(window)
        self.min_points = max(2, window // 2) if min_points is None else min_points
        if not 1 <= self.min_points <= window:
            raise ForecastError(f"{where}: min_points must be in 1..window={window}, got {min_points!r}")
        self.template: Forecaster = make_model(model, **dict(model_params or {}))
        self.bus, self.topic, self.predictions, self.group = bus, topic, predictions, group
        self.window, self.horizon, self.step_s, self.alpha = window, horizon, step_s, alpha
        self.coverage = coverage
        self.lake, self.dataset, self.zone = lake, dataset or topic, zone
        self.max_messages = max_messages
        self.scorer = scorer
        self.models = ModelBank()
        """series id → its model; SES and seasonal naive models keep their state in arrays."""
        self.labels: dict[str, str] = {}
        """series id → the ``model`` written with its forecasts when not the template's name."""
        self._loop = ConsumerLoop(
            bus,
            topic,
            group=group,
            name=where,
            prepare=self._absorb,
            store=self._write,
            quarantine=None if lake is None else self._quarantine,
            max_messages=max_messages,
            latency_samples=latency_samples,
        )
        self._swaps: queue.SimpleQueue[_Swap] = queue.SimpleQueue()
        self._swaps_installed = 0
        self._known: frozenset[str] = frozenset()
        self.owner = f"{group}/{topic}"
        """Whose checkpoint this predictor keeps in the prediction store."""
        self._next: dict[int, int] = {}
        """partition → offset after the last message absorbed (and checkpointed once written)."""
        self._dirty: set[str] = set()
        """Series whose window or model changed since the last checkpoint."""
        self._moved: set[int] = set()
        """Partitions whose next offset moved since the last checkpoint."""
        self._settings_saved = False
        self._resumed = False
        self._refill_pending = False
        """No checkpoint: the first batch refills the windows from the lake, up to its own points."""
        self._since: dict[str, int | None] = {}
        """Models swapped in before their window was refilled: the newest point they were trained on."""
        self.shadows: dict[str, dict[str, Forecaster]] = {}
        """series id → label → a model forecasting in shadow (see :meth:`queue_shadow`)."""
        self._shadow_ops: queue.SimpleQueue[_Shadow] = queue.SimpleQueue()
        self._shadowed = False

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> Consumer:
        """Join the consumer group; the first time, resume from the checkpoint or refill from the lake.

        The first poll does it (see the module docstring).
        """
        if not self._resumed:
            self.resume()
        return self._loop.start()

    def resume(self) -> int:
        """Restore the checkpoint once; without a usable one, refill from the lake with the first batch.

        Returns the series restored (0 when the windows are left to the first batch).
        """
        if self._resumed:
            return 0
        entries = self.predictions.checkpoint(self.owner)  # an unreadable store: tried again next round
        saved = entries.pop(_SETTINGS, None)
        if saved is not None and saved == self._settings():
            self._restore(entries)
            self._resumed = self._settings_saved = True
            log.info(
                "online predictor %s: resumed %d series from its checkpoint", self.topic, len(self.windows)
            )
            return len(self.windows)
        if saved is not None:
            log.info(
                "online predictor %s: model or window changed since the checkpoint; starting afresh",
                self.topic,
            )
            self.predictions.drop_checkpoint(self.owner)
        self._refill_pending = self.lake is not None
        self._resumed = True
        return 0

    def close(self) -> None:
        """Leave the consumer group (uncommitted messages go to the next member)."""
        self._loop.close()

    def run(self, stop: threading.Event, timeout: float = 0.2) -> None:
        """Poll and forecast until ``stop`` is set; storage errors are logged and retried."""
        try:
            while not stop.is_set():
                try:
                    self.run_once(timeout)
                except SparkhuError as exc:
                    log.error("online predictor %s: %s; retrying", self.topic, exc)
                    stop.wait(min(1.0, timeout * 5))
        finally:
            self.close()

    def run_once(self, timeout: float = 1.0) -> int:
        """Install queued models, then handle one poll: returns the number of messages consumed.

        Forecasts of an earlier poll whose write failed are written first; 0 when no message
        arrived within ``timeout`` seconds.
        """
        self.start()
        self.apply_swaps()
        self.apply_shadows()
        return len(self._loop.run_once(timeout).messages)

    # ---- models ----------------------------------------------------------------------
    def queue_swap(
        self,
        series_id: str,
        model: Forecaster,
        *,
        label: str | None = None,
        trained_until_us: int | None = None,
    ) -> None:
        """Hand a new model for a series to the predictor's loop; safe to call from any thread.

        The next round installs it (:meth:`apply_swaps`). ``label`` (e.g. ``"ses@v3"``, a
        registry version; default the model's name) is stored with its forecasts as ``model``.
        ``trained_until_us``: the newest point the model was trained on; the window's newer
        points are fed to it (``update``) when it is installed. An unfitted model is fitted on
        the window instead.
        """
        self._swaps.put(_Swap(series_id, model, label, trained_until_us))

    def apply_swaps(self) -> list[str]:
        """Install every queued model now; returns their series. Call only from the predictor's thread.

        :meth:`run_once` does it first; one-shot use and tests can call it directly. A model
        that cannot be brought up to date is logged and dropped; the series keeps its model.
        """
        installed: list[str] = []
        while True:
            try:
                swap = self._swaps.get_nowait()
            except queue.Empty:
                return installed
            try:
                self._install(swap)
            except SparkhuError as exc:
                label = swap.label or swap.model.name
                log.warning(
                    "online predictor %s: %s not swapped to %s: %s", self.topic, swap.series_id, label, exc
                )
                continue
            installed.append(swap.series_id)

    def known_series(self) -> frozenset[str]:
        """Every series seen in the topic or given a model so far (a snapshot; safe from any thread)."""
        return self._known

    def _install(self, swap: _Swap) -> None:
        model, sid = swap.model, swap.series_id
        if sid in self.windows and len(self.windows[sid]):
            window = self.windows[sid]
            if not model.is_fitted:
                model.fit(np.asarray(window.values))
            else:
                update_since(model, window.ts, window.values, swap.trained_until_us)
        elif model.is_fitted:
            self._since[sid] = swap.trained_until_us  # a refill still to come brings it up to date
        self.models[sid] = model
        self.labels[sid] = swap.label or model.name
        self._dirty.add(sid)
        self._swaps_installed += 1
        self._known = self._known | {sid}
        log.info("online predictor %s: %s now served by %s", self.topic, sid, self.labels[sid])

    def refill(self, lake: Lake, before: Mapping[str, int] | None = None) -> int:
        """Load the last ``window`` points per series from the lake and fit their models; returns points.

        ``before``: series id → the first timestamp (µs) that the bus delivers next. The lake's
        points of a series from there on are left out (the bus delivers them again, and each
        is an origin to forecast from), for series not named from the earliest of these on.
        """
        newest = _newest_partition_start(lake, self.zone, self.dataset)
        if newest is None:
            return 0
        end = None if not before else from_us(max(before.values()) + 1)
        anchor = newest if not before else min(newest, from_us(min(before.values())))
        table = lake.read(
            self.zone, self.dataset, start=anchor - timedelta(seconds=self.window * self.step_s), end=end
        )
        if before:
            table = table.filter(_before(table, before, min(before.values())))
        table = series_tail(table, self.window)
        added = self.windows.extend(table)
        for sid, (ts, values) in added.items():
            model = self.models.get(sid)
            if sid in self._since and model is not None and model.is_fitted:  # swapped in before the refill
                self.models[sid] = update_since(model, ts, values, self._since.pop(sid))
            else:
                self._advance(sid, values)
        self._know(added)
        self._dirty.update(added)
        log.info("online predictor %s: refilled %d series from the lake", self.topic, len(added))
        return table.num_rows

    def _know(self, added: NewPoints) -> None:
        if not self._known.issuperset(added):
            self._known = self._known | added.keys()

    def _advance(self, series_id: str, new_values: np.ndarray) -> Forecaster | None:
        """Warm-start or update the series' model; None while it has too few points."""
        if self.models.fitted(series_id):
            failed = self.models.update_many([series_id], [new_values])
            return None if failed else self.models[series_id]
        return self._warm_start(series_id)

    def _warm_start(self, series_id: str) -> Forecaster | None:
        """Fit a new model on the series' window (None while it has too few points)."""
        window = self.windows[series_id]
        if len(window) < self.min_points:
            return None
        model = self.template.clone().fit(np.asarray(window.values))
        self.models[series_id] = model
        return model

    # ---- shadows ---------------------------------------------------------------------
    def queue_shadow(
        self, series_id: str, model: Forecaster | None, label: str, *, trained_until_us: int | None = None
    ) -> None:
        """Run ``model`` in shadow beside the series' champion (``None``: stop the shadow ``label``).

        Safe from any thread; the next round installs it (:meth:`apply_shadows`), brought up to
        date with the window like a swapped model. A shadow is updated and forecasts with every
        new point, its forecasts are stored raw under ``<label>/shadow`` and never blended, so
        the champion serves alone while the two are compared on the same points (they count in
        ``stats().forecasts``). Shadows are not checkpointed: whoever queued them queues them again
        after a restart.
        """
        self._shadow_ops.put(_Shadow(series_id, model, label, trained_until_us))

    def apply_shadows(self) -> None:
        """Install or stop the queued shadows now; call only from the predictor's thread."""
        while True:
            try:
                op = self._shadow_ops.get_nowait()
            except queue.Empty:
                return
            label = op.label
            if op.model is None:
                self.shadows.get(op.series_id, {}).pop(label, None)
                if not self.shadows.get(op.series_id, True):
                    del self.shadows[op.series_id]
                continue
            model, sid = op.model, op.series_id
            try:
                if sid in self.windows and len(self.windows[sid]):
                    window = self.windows[sid]
                    if not model.is_fitted:
                        model.fit(np.asarray(window.values))
                    else:
                        update_since(model, window.ts, window.values, op.trained_until_us)
            except SparkhuError as exc:
                log.warning(
                    "online predictor %s: shadow %s of %s not installed: %s", self.topic, label, sid, exc
                )
                continue
            self.shadows.setdefault(sid, {})[label] = model
            self._shadowed = True
            log.info("online predictor %s: %s shadowed by %s", self.topic, sid, label)

    def _shadow_forecast(self, added: NewPoints) -> pa.Table:
        """The shadows' forecasts from the new points of their series (raw rows, labelled ``/shadow``)."""
        rows: dict[str, list[Any]] = {name: [] for name in FORECAST_SCHEMA.names}
        h = self.horizon
        steps = np.arange(1, h + 1, dtype="int32")
        for sid in added.keys() & self.shadows.keys():
            ts_new, values_new = added[sid]
            for label, model in self.shadows[sid].items():
                try:
                    if model.is_fitted:
                        model.update(values_new)
                    elif len(self.windows[sid]) >= self.min_points:
                        model.fit(np.asarray(self.windows[sid].values))
                    else:
                        continue
                    mean = model.forecast(h)
                except ForecastError as exc:
                    log.warning("online predictor %s: shadow %s of %s: %s", self.topic, label, sid, exc)
                    continue
                ok = np.isfinite(mean)
                origin = int(ts_new[-1])
                rows["series_id"].extend([sid] * int(ok.sum()))
                rows["origin_ts"].append(np.full(int(ok.sum()), origin, dtype="int64"))
                rows["target_ts"].append((origin + steps.astype("int64") * round(self.step_s * US_PER_S))[ok])
                rows["step"].append(steps[ok])
                rows["value"].append(mean[ok])
                rows["model"].extend([label + SHADOW_SUFFIX] * int(ok.sum()))
        if not rows["series_id"]:
            return FORECAST_SCHEMA.empty_table()
        n = len(rows["series_id"])
        ts_type = FORECAST_SCHEMA.field("origin_ts").type
        return pa.Table.from_arrays(
            [
                pa.array(rows["series_id"], pa.string()),
                pa.array(np.concatenate(rows["origin_ts"])).cast(ts_type),
                pa.array(np.concatenate(rows["target_ts"])).cast(ts_type),
                pa.array(np.concatenate(rows["step"])),
                pa.array(np.concatenate(rows["value"])),
                pa.nulls(n, pa.float64()),
                pa.nulls(n, pa.float64()),
                pa.array(rows["model"], pa.string()),
            ],
            schema=FORECAST_SCHEMA,
        )

    # ---- checkpoints -----------------------------------------------------------------
    def _settings(self) -> bytes:
        """What the saved windows and models depend on (``default=repr``: any hyperparameter)."""
        kept = {"model": self.template.name, "params": self.template.params, "window": self.window}
        return json.dumps(kept | {"min_points": self.min_points}, sort_keys=True, default=repr).encode()

    def _checkpoint(self) -> Checkpoint:
        """The series changed since the last checkpoint, the next offsets and (once) the settings."""
        entries: dict[str, bytes] = {}
        for sid in self._dirty:
            window = self.windows[sid] if sid in self.windows else None
            state = (
                None if window is None else window.ts.copy(),
                None if window is None else window.values.copy(),
                self.models.get(sid),
                self.labels.get(sid),
            )
            entries[sid] = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        for partition in self._moved:
            entries[f"{_OFFSET}{partition}"] = str(self._next[partition]).encode()
        if not self._settings_saved:
            entries[_SETTINGS] = self._settings()
        return Checkpoint(self.owner, entries, None if self.scorer is None else self.scorer.save)

    def _saved(self) -> None:
        if self.scorer is not None:
            self.scorer.committed()
        self._dirty.clear()
        self._moved.clear()
        self._settings_saved = True

    def _restore(self, entries: Mapping[str, bytes]) -> None:
        self._next = {int(k[len(_OFFSET) :]): int(v) for k, v in entries.items() if k.startswith(_OFFSET)}
        for sid, blob in entries.items():
            if sid.startswith("@"):
                continue
            # written by this class into the platform's own catalog, as trusted as the registry's models
            ts, values, model, label = pickle.loads(blob)
            if ts is not None:
                self.windows.load(sid, ts, values)
            if model is not None:
                self.models[sid] = model
            if label is not None:
                self.labels[sid] = label
        self._known = frozenset(sid for sid in entries if not sid.startswith("@"))

    # ---- the loop's steps ------------------------------------------------------------
    def _absorb(self, batch: Batch) -> pa.Table:
        """Absorb the batch message by message (see the module docstring); the forecasts it made."""
        parts = self._unseen(batch)
        if self._refill_pending and self.lake is not None and any(p.num_rows for p in parts):
            self.refill(self.lake, before=_first_ts(parts))
            self._refill_pending = False
        tables = []
        for points in parts:
            added = self._extend(points)
            tables.append(self._forecast(added))
            if self.shadows:
                tables.append(self._shadow_forecast(added))
        for message in batch.messages:
            self._next[message.partition] = max(self._next.get(message.partition, 0), message.offset + 1)
            self._moved.add(message.partition)
        if self.scorer is not None:
            self.scorer.observe(pa.concat_tables(parts) if parts else batch.points.slice(0, 0))
        if not tables:
            return FORECAST_SCHEMA.empty_table()
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables)

    def _unseen(self, batch: Batch) -> list[pa.Table]:
        """The points of each message not yet absorbed (messages below the checkpoint's offsets were)."""
        if batch.sizes is None:  # not cut by message: all or nothing
            fresh = any(m.offset >= self._next.get(m.partition, 0) for m in batch.readable)
            return [batch.points] if fresh and batch.points.num_rows else []
        parts, start = [], 0
        for message, size in zip(batch.readable, batch.sizes, strict=True):
            if size and message.offset >= self._next.get(message.partition, 0):
                parts.append(batch.points.slice(start, size))
            start += size
        return parts

    def _extend(self, points: pa.Table) -> NewPoints:
        added = self.windows.extend(points)
        self._know(added)
        self._dirty.update(added)
        return added

    def _write(self, forecasts: pa.Table) -> None:
        shadow = None
        if self._shadowed and forecasts.num_rows:
            mask = pc.ends_with(forecasts.column("model"), SHADOW_SUFFIX)
            shadow, forecasts = forecasts.filter(mask), forecasts.filter(pc.invert(mask))
        self.predictions.write(forecasts, alpha=self.alpha, checkpoint=self._checkpoint(), unblended=shadow)
        self._saved()

    def _quarantine(self, records: pa.Table) -> None:
        if self.lake is not None:
            self.lake.write_quarantine(self.dataset, records)

    def _forecast(self, added: NewPoints) -> pa.Table:
        """Update the models of the series that gained points and forecast them, as arrays.

        Series with a model are updated together (per model family, :class:`ModelBank`); a
        series without one is fitted on its window once it has ``min_points``.
        """
        updated: list[str] = []
        values: list[np.ndarray] = []
        ready: list[str] = []
        origins: list[int] = []
        for sid, (ts_new, values_new) in added.items():
            if self.models.fitted(sid):
                updated.append(sid)
                values.append(values_new)
            else:
                try:
                    if self._warm_start(sid) is None:
                        continue
                except ForecastError as exc:
                    log.warning("online predictor %s: series %s: %s", self.topic, sid, exc)
                    continue
            ready.append(sid)
            origins.append(int(ts_new[-1]))
        failed = self.models.update_many(updated, values) if updated else set()
        if failed:  # not forecast from a state that missed the message's points
            keep_ready = [i for i, sid in enumerate(ready) if sid not in failed]
            ready, origins = [ready[i] for i in keep_ready], [origins[i] for i in keep_ready]
        if not ready:
            return FORECAST_SCHEMA.empty_table()
        h = self.horizon
        out = self.models.forecast_many(ready, h, self.coverage)
        keep = np.repeat(out.ok, h) & np.isfinite(out.mean.reshape(-1))
        n = len(ready)
        steps = np.tile(np.arange(1, h + 1, dtype="int32"), n)
        origin = np.repeat(np.asarray(origins, dtype="int64"), h)
        target = origin + steps.astype("int64") * round(self.step_s * US_PER_S)
        labels = [self.labels.get(s, self.template.name) for s in ready]
        ts_type = FORECAST_SCHEMA.field("origin_ts").type
        columns = [
            pa.DictionaryArray.from_arrays(
                pa.array(np.repeat(np.arange(n, dtype="int32"), h)[keep]), ready
            ).cast(pa.string()),
            pa.array(origin[keep]).cast(ts_type),
            pa.array(target[keep]).cast(ts_type),
            pa.array(steps[keep]),
            pa.array(out.mean.reshape(-1)[keep]),
            pa.array(out.lower.reshape(-1)[keep], from_pandas=True),
            pa.array(out.upper.reshape(-1)[keep], from_pandas=True),
            pa.DictionaryArray.from_arrays(
                pa.array(np.repeat(np.arange(n, dtype="int32"), h)[keep]), labels
            ).cast(pa.string()),
        ]
        return pa.Table.from_arrays(columns, schema=FORECAST_SCHEMA)

    # ---- statistics ------------------------------------------------------------------
    def latencies_ms(self) -> np.ndarray:
        """Latency of each recent message (ms from produced to forecasts stored)."""
        return self._loop.latencies_ms()

    def stats(self) -> OnlineStats:
        """Counters and latency percentiles so far (NaN percentiles before the first message)."""
        lat = self.latencies_ms()
        p50, p99 = np.percentile(lat, [50, 99]).tolist() if lat.size else [float("nan")] * 2
        counts = self._loop.counts()
        return OnlineStats(
            batches=counts.batches,
            messages=counts.messages,
            points=counts.points,
            late_points=self.windows.late_points,
            malformed=counts.quarantined,
            forecasts=counts.stored,
            series=len(self.models),
            latency_p50_ms=p50,
            latency_p99_ms=p99,
            swaps=self._swaps_installed,
        )


def checkpoint_offsets(predictions: PredictionStore, group: str, topic: str) -> dict[int, int]:
    """partition → next offset in the checkpoint of the predictors of ``group`` on ``topic``.

    After a graceful stop these equal the group's committed offsets on the bus.
    """
    entries = predictions.checkpoint(f"{group}/{topic}")
    return {int(k[len(_OFFSET) :]): int(v) for k, v in entries.items() if k.startswith(_OFFSET)}


def _first_ts(parts: list[pa.Table]) -> dict[str, int]:
    """series id → its earliest timestamp (µs) in ``parts``."""
    table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    firsts = (
        pa.table(
            {
                "series_id": table.column("series_id").cast(pa.string()),
                "ts": table.column("ts").cast(pa.int64()),
            }
        )
        .group_by("series_id")
        .aggregate([("ts", "min")])
    )
    return dict(zip(firsts.column("series_id").to_pylist(), firsts.column("ts_min").to_pylist(), strict=True))


def _before(table: pa.Table, before: Mapping[str, int], default: int) -> pa.Array:
    """Mask of the rows older than their series' bound in ``before`` (``default`` for the others)."""
    names = pa.array(list(before), pa.string())
    index = pc.index_in(table.column("series_id").cast(pa.string()), value_set=names)
    bounds = np.append(np.fromiter(before.values(), dtype="int64", count=len(before)), default)
    at = index.fill_null(len(before)).to_numpy(zero_copy_only=False)
    return pa.array(table.column("ts").cast(pa.int64()).to_numpy() < bounds[at])


def _newest_partition_start(lake: Lake, zone: str, dataset: str) -> datetime | None:
    try:
        partitions = lake.partitions(zone, dataset)
    except NotFoundError:
        return None
    return max((part.start for part in partitions), default=None)
