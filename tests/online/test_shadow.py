"""Shadow models: updated and forecasting beside the champion, stored raw, never blended, stopped."""

from __future__ import annotations

import numpy as np
import pytest
from tests.online.conftest import MIN, T0, TOPIC

from sparkhu.forecast.models import make_model
from sparkhu.online.learner import SHADOW_SUFFIX, OnlinePredictor
from sparkhu.series import points
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.predictions import PredictionStore
from sparkhu.stream.codecs import publish_points

pytestmark = pytest.mark.integration
SID = "home/power/S"


def test_a_shadow_forecasts_beside_the_champion_without_touching_the_blend(settings, bus) -> None:
    with Catalog(settings.storage.catalog) as catalog:
        store = PredictionStore(catalog.engine)
        online = OnlinePredictor(bus, TOPIC, store, horizon=2, window=10, min_points=2, coverage=None)
        publish_points(bus, TOPIC, points(SID, T0 + np.arange(3) * MIN, [1.0, 1.0, 1.0]))
        online.run_once(timeout=2.0)
        far = make_model("ses", alpha=0.01).fit(np.full(5, 1000.0))  # trained up to the window's end
        online.queue_shadow(SID, far, "ses@v9", trained_until_us=T0 + 2 * MIN)
        for minute in (3, 4):
            publish_points(bus, TOPIC, points(SID, [T0 + minute * MIN], [1.0]))
            online.run_once(timeout=2.0)
        raw = store.raw(SID)
        shadow = [
            v
            for v, m in zip(raw["value"].to_pylist(), raw["model"].to_pylist(), strict=True)
            if m.endswith(SHADOW_SUFFIX)
        ]
        assert shadow == pytest.approx([990.01, 990.01, 980.1199, 980.1199])  # updated with each new point
        assert set(raw["model"].to_pylist()) == {"ses", "ses@v9" + SHADOW_SUFFIX}
        assert max(store.blended(SID)["value"].to_pylist()) == pytest.approx(1.0)  # only the champion's
        online.queue_shadow(SID, None, "ses@v9")
        publish_points(bus, TOPIC, points(SID, [T0 + 5 * MIN], [1.0]))
        online.run_once(timeout=2.0)
        assert SID not in online.shadows and store.raw(SID).num_rows == raw.num_rows + 2
        online.close()
