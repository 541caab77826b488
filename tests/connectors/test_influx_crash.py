"""kill -9 of an InfluxDB connector process at random moments, then a restart: every point is in the
lake exactly once, and the catalog counts each once."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sparkhu.connectors.influxdb import InfluxSource
from sparkhu.connectors.runner import ingest_to_lake
from sparkhu.storage.catalog import Catalog
from sparkhu.storage.lake import Lake

pytestmark = pytest.mark.slow

T0_NS = 1_609_426_800 * 10**9
MINUTES, ZONES = 400, ("WHE", "FGE", "B1E")

CHILD = textwrap.dedent(
    """
    import sys
    from sparkhu.connectors.influxdb import InfluxSource
    from sparkhu.connectors.runner import ingest_to_lake
    from sparkhu.storage.catalog import Catalog
    from sparkhu.storage.lake import Lake
    url, db, root = sys.argv[1:4]
    catalog = Catalog(f"sqlite:///{root}/catalog.db")
    src = InfluxSource("amp", url, db, "electricity", source="AMPds2", chunk_size=60)
    print("started", flush=True)
    ingest_to_lake(src, Lake(f"{root}/lake"), catalog, dataset="amp")
    """
)


def test_kill_9_at_random_points_then_restart_lands_every_point_once(
    influx_server, influx_db, tmp_path: Path
) -> None:
    client, db = influx_db
    body = "".join(
        f"electricity,zone={z} P={m}.25 {T0_NS + m * 60 * 10**9}\n" for m in range(MINUTES) for z in ZONES
    )
    client.write(db, body.encode())
    rng = random.Random(15)
    src_path = str(Path(__file__).resolve().parents[2] / "src")
    for _ in range(2):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, influx_server.url, db, str(tmp_path)],
            stdout=subprocess.PIPE,
            env={"PYTHONPATH": src_path, "PATH": "/usr/bin:/bin"},
        )
        assert child.stdout is not None and child.stdout.readline().strip() == b"started"
        time.sleep(rng.uniform(0.2, 0.8))
        child.kill()  # SIGKILL: no cleanup of any kind
        child.wait(timeout=10)
        child.stdout.close()
    catalog = Catalog(f"sqlite:///{tmp_path}/catalog.db")
    lake = Lake(str(tmp_path / "lake"))
    ingest_to_lake(
        InfluxSource("amp", influx_server.url, db, "electricity", source="AMPds2"),
        lake,
        catalog,
        dataset="amp",
    )
    table = lake.read("raw", "amp")
    assert table.num_rows == MINUTES * len(ZONES)
    counts = {z: catalog.series(f"AMPds2/electricity/{z}.P").count for z in ZONES}
    assert counts == dict.fromkeys(ZONES, MINUTES)
    catalog.close()
