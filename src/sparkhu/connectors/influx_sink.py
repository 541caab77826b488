"""The InfluxDB sink: forecasts written back to InfluxDB 1.x as line protocol, as the original did.

Per topic (one dataset), every ``poll_s`` seconds, for each series of the dataset with forecasts
newer than the sink's watermark (the newest origin written, per series, kept in the catalog under
the sink's name), the sink writes

* every new raw forecast as ``<raw_measurement>,model=..,series_id=..,step=.. value=..,lower=..,upper=..
  <target time>`` (the step and the target fix the origin, so each forecast has its own point), and
* the blended value of every target those forecasts touched as ``<blended_measurement>,series_id=..
  value=..,lower=..,upper=..,updates=.. <target time>``,

then saves the watermark. InfluxDB replaces a point of the same series and time, so writing a
forecast again — after a crash between the write and the watermark — changes nothing: the sink is
idempotent. An InfluxDB that is down fails the round with one error naming the sink; the next round
writes the same forecasts again.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from sparkhu.config import dataset_name
from sparkhu.connectors.base import Backends, SinkSpec
from sparkhu.connectors.influx_client import InfluxClient
from sparkhu.series import SeriesId
from sparkhu.stream.lineproto import encode_lines
from sparkhu.timeaxis import from_us, to_us

if TYPE_CHECKING:
    from sparkhu.storage.catalog import Catalog
    from sparkhu.storage.predictions import PredictionStore

__all__ = ["InfluxForecastSink", "InfluxSinkSettings", "forecast_lines"]


def forecast_lines(raw: pa.Table, blended: pa.Table, raw_measurement: str, blended_measurement: str) -> bytes:
    """Line protocol of raw forecasts (FORECAST_SCHEMA) and blended ones (BLENDED_SCHEMA).

    >>> from sparkhu.storage.predictions import BLENDED_SCHEMA, FORECAST_SCHEMA
    >>> raw = pa.table({"series_id": ["a/b/c"], "origin_ts": [0], "target_ts": [60_000_000], "step": [1],
    ...                 "value": [1.5], "lower": [1.0], "upper": [2.0], "model": ["ses"]})
    >>> raw = raw.cast(FORECAST_SCHEMA)
    >>> forecast_lines(raw, BLENDED_SCHEMA.empty_table(), "forecast_raw", "forecast").decode()
    'forecast_raw,series_id=a/b/c,model=ses,step=1 value=1.5,lower=1.0,upper=2.0 60000000000\\n'
    """
    out = b""
    if raw.num_rows:
        out += encode_lines(
            raw_measurement,
            {
                "series_id": raw.column("series_id").to_pylist(),
                "model": raw.column("model").to_pylist(),
                "step": raw.column("step").to_pylist(),
            },
            {name: raw.column(name).to_pylist() for name in ("value", "lower", "upper")},
            raw.column("target_ts").cast(pa.int64()).to_numpy(),
        )
    if blended.num_rows:
        out += encode_lines(
            blended_measurement,
            {"series_id": blended.column("series_id").to_pylist()},
            {
                **{name: blended.column(name).to_pylist() for name in ("value", "lower", "upper")},
                "updates": [float(u) for u in blended.column("updates").to_pylist()],
            },
            blended.column("target_ts").cast(pa.int64()).to_numpy(),
        )
    return out


class InfluxForecastSink:
    """Write the forecasts of ``dataset``'s series to ``db`` at ``client`` (see the module docstring)."""

    def __init__(
        self,
        name: str,
        predictions: PredictionStore,
        catalog: Catalog,
        client: InfluxClient,
        db: str,
        dataset: str,
        *,
        raw_measurement: str = "forecast_raw",
        blended_measurement: str = "forecast",
        poll_s: float = 5.0,
    ) -> None:
        self.name, self.dataset, self.db = name, dataset, db
        self.predictions, self.catalog, self.client = predictions, catalog, client
        self.raw_measurement, self.blended_measurement = raw_measurement, blended_measurement
        self.poll_s = poll_s
        self.key = f"influxdb:{db}:{dataset}"
        self.written = {"raw": 0, "blended": 0}
        self._created = False

    def series(self) -> list[str]:
        """The series of the dataset that have forecasts."""
        out = []
        for sid in self.predictions.series():
            parts = SeriesId.parse(sid)
            if dataset_name(parts.source, parts.measurement) == self.dataset:
                out.append(sid)
        return out

    def write_once(self) -> int:
        """Write what is new since the watermark; the number of lines written."""
        if not self._created:
            self.client.execute(f'CREATE DATABASE "{self.db}"')
            self._created = True
        saved: dict[str, Any] = dict(self.catalog.get_watermark(self.name, self.key) or {})
        lines = 0
        for sid in self.series():
            latest = self.predictions.latest_origin(sid)
            if latest is None or to_us(latest) <= saved.get(sid, -(2**62)):
                continue
            since = saved.get(sid)
            start = None if since is None else from_us(int(since) + 1)
            raw = self.predictions.raw(sid, start=start)
            if since is not None:
                raw = raw.filter(pc.greater(raw.column("origin_ts").cast(pa.int64()), int(since)))
            if raw.num_rows == 0:
                continue
            touched = pc.min(raw.column("target_ts")).as_py()  # the blended targets the new forecasts moved
            blended = self.predictions.blended(sid, start=touched)
            payload = forecast_lines(raw, blended, self.raw_measurement, self.blended_measurement)
            self.client.write(self.db, payload)
            lines += payload.count(b"\n")
            self.written["raw"] += raw.num_rows
            self.written["blended"] += blended.num_rows
            saved[sid] = to_us(latest)
            self.catalog.set_watermark(self.name, self.key, saved)
        return lines

    def run(self, stop: threading.Event) -> None:
        """Write every ``poll_s`` seconds until ``stop`` is set."""
        while not stop.is_set():
            self.write_once()
            stop.wait(self.poll_s)

    def figures(self) -> dict[str, float]:
        """Live counts: raw and blended forecasts written."""
        return {"raw": float(self.written["raw"]), "blended": float(self.written["blended"])}


class InfluxSinkSettings(SinkSpec):
    """A ``[[sinks]]`` entry of ``kind = "influxdb"``: forecasts written back to InfluxDB.

    >>> url = "http://127.0.0.1:8086"
    >>> InfluxSinkSettings(name="back", kind="influxdb", url=url, database="AMPds2").poll_s
    5.0
    """

    kind: Literal["influxdb"] = "influxdb"
    url: str = Field(pattern=r"^https?://")
    database: str
    raw_measurement: str = "forecast_raw"
    blended_measurement: str = "forecast"
    poll_s: float = Field(default=5.0, gt=0.0)
    username: str | None = None
    password: str | None = None

    def open(self, backends: Backends, topic: str, dataset: str) -> InfluxForecastSink:
        """The sink of ``dataset``'s forecasts."""
        client = InfluxClient(
            self.url, who=f"influxdb sink {self.name!r}", username=self.username, password=self.password
        )
        return InfluxForecastSink(
            self.name,
            backends.predictions,
            backends.catalog,
            client,
            self.database,
            dataset,
            raw_measurement=self.raw_measurement,
            blended_measurement=self.blended_measurement,
            poll_s=self.poll_s,
        )
