"""Checkpoints in the prediction store: saved with the forecasts, in one transaction, on both backends."""

from __future__ import annotations

import pyarrow as pa
import pytest

from sparkhu.errors import CatalogError, InputError
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.predictions import FORECAST_SCHEMA, Checkpoint, PredictionStore

MIN = 60_000_000


def one_forecast(value: float = 1.0, target: int = 2 * MIN) -> pa.Table:
    return pa.table(
        {
            "series_id": ["a/b/c"],
            "origin_ts": [MIN],
            "target_ts": [target],
            "step": [1],
            "value": [value],
            "model": ["ses"],
        }
    )


def test_entries_are_saved_merged_and_dropped_per_owner(store: PredictionStore):
    assert store.checkpoint("online/t") == {}
    assert (
        store.write(one_forecast(), checkpoint=Checkpoint("online/t", {"a/b/c": b"1", "@offset/0": b"5"}))
        == 1
    )
    store.write(FORECAST_SCHEMA.empty_table(), checkpoint=Checkpoint("online/t", {"@offset/0": b"7"}))
    store.write(FORECAST_SCHEMA.empty_table(), checkpoint=Checkpoint("other/t", {"x": b"\x00\xff"}))
    assert store.checkpoint("online/t") == {"a/b/c": b"1", "@offset/0": b"7"}  # earlier keys kept
    assert store.checkpoint("other/t") == {"x": b"\x00\xff"}
    assert store.drop_checkpoint("online/t") == 2 and store.checkpoint("online/t") == {}
    assert store.checkpoint("other/t") == {"x": b"\x00\xff"}


def test_a_failed_write_saves_neither_forecasts_nor_checkpoint(store: PredictionStore, catalog: Catalog):
    bad = one_forecast().set_column(4, "value", pa.array([float("nan")]))
    with pytest.raises(InputError, match="value"):
        store.write(bad, checkpoint=Checkpoint("online/t", {"k": b"v"}))
    with catalog.engine.begin() as conn:  # the forecasts' table is away: the transaction fails
        conn.exec_driver_sql("ALTER TABLE forecasts_raw RENAME TO forecasts_raw_away")
    with pytest.raises(CatalogError, match="forecasts"):
        store.write(one_forecast(), checkpoint=Checkpoint("online/t", {"k": b"v"}))
    with catalog.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE forecasts_raw_away RENAME TO forecasts_raw")
    assert store.checkpoint("online/t") == {}


def test_a_checkpoint_needs_an_owner(store: PredictionStore):
    with pytest.raises(InputError, match="owner"):
        store.write(FORECAST_SCHEMA.empty_table(), checkpoint=Checkpoint("", {"k": b"v"}))
