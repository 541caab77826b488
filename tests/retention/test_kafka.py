"""A ``bus`` policy on a Kafka bus sets the topics' retention configs through the admin API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sparkhu.config import Settings
from sparkhu.retention.apply import apply_plan
from sparkhu.retention.context import RetentionContext
from sparkhu.retention.plan import make_plan
from sparkhu.retention.policies import set_hold, set_policy
from sparkhu.retention.storage import usage
from sparkhu.stream import open_bus
from sparkhu.stream.kafka import KafkaBus
from sparkhu.stream.tansu import TansuBroker

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
NAMES = ["retention.ms", "retention.bytes"]


@pytest.fixture
def kafka(settings: Settings) -> Iterator[KafkaBus]:
    """The distributed configuration's broker, or a Tansu broker of this test in the embedded one."""
    if settings.bus.uri.startswith("kafka://"):
        bus = open_bus(settings.bus.uri)
        assert isinstance(bus, KafkaBus)
        yield bus
        bus.close()
        return
    with TansuBroker() as broker:
        bus = KafkaBus(broker.uri)
        yield bus
        bus.close()


def test_a_bus_policy_sets_retention_ms_and_bytes_on_kafka_topics(
    ctx: RetentionContext, kafka: KafkaBus, tmp_path: Path
) -> None:
    suffix = tmp_path.name[-8:].replace("-", "_")
    metered, held, other = f"m.a{suffix}", f"m.held{suffix}", f"x.b{suffix}"
    for topic, partitions in ((metered, 2), (held, 1), (other, 1)):
        kafka.create_topic(topic, partitions=partitions)
    ctx.bus = kafka
    set_policy(ctx, {"name": "bus", "target": "bus", "match": "m.*", "keep_days": 3, "max_bytes": 10_000_000})
    set_hold(ctx, {"name": "h", "target": "bus", "match": held})
    before = kafka.topic_configs([metered, held, other], NAMES)
    plan = make_plan(ctx)
    items = [i for i in plan.items if i.target == "bus"]
    assert [(i.name, i.action, i.mode) for i in items] == [(metered, "configure", "topic-config")]
    wanted = {"retention.ms": str(3 * DAY_MS), "retention.bytes": str(10_000_000 // 2)}
    assert items[0].detail["set"] == wanted  # the quota is per partition in Kafka
    assert items[0].detail["was"] == {k: before[metered].get(k) for k in wanted}
    assert any(p["what"] == f"bus/{held}" for p in plan.protected)
    assert kafka.topic_configs([metered], NAMES) == {metered: before[metered]}  # a plan changes nothing
    result = apply_plan(ctx, plan)
    assert result.done == [items[0].id]
    after = kafka.topic_configs([metered, held, other], NAMES)
    assert {k: after[metered][k] for k in wanted} == wanted
    assert after[held] == before[held] and after[other] == before[other]
    audit = [a for a in ctx.catalog.audit_log(limit=20) if a["target"] == f"bus/{metered}"]
    assert audit and audit[0]["action"] == "configure", json.dumps(audit, default=str)
    shown = {u["name"]: u for u in usage(ctx) if u["target"] == "bus"}
    assert shown[metered]["partitions"] == 2 and shown[metered]["rows"] is None  # the broker's
    # in force: the next plan has nothing to change
    assert not [i for i in make_plan(ctx).items if i.target == "bus"]
