"""Fixtures of the connector tests: a real InfluxDB 1.x server (Debian's ``influxd``) per module.

The server runs with its own configuration file, data, meta and WAL folders in a tmp folder and
free ports on 127.0.0.1; no system service is involved. Without ``influxd`` the tests skip (a
failure in CI, see the top conftest).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from sparkhu.connectors.influx_client import InfluxClient
from sparkhu.connectors.influx_server import InfluxServer, find_influxd


@pytest.fixture(scope="module")
def influx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """An InfluxDB 1.x server for this module."""
    if find_influxd() is None:
        pytest.skip("influxd missing: install the Debian package `influxdb` (make system-deps)")
    with InfluxServer(tmp_path_factory.mktemp("influxdb")) as server:
        yield server


@pytest.fixture
def influx_db(influx_server: InfluxServer) -> Iterator[tuple[InfluxClient, str]]:
    """A client and a fresh database of its own on the module's server (dropped afterwards)."""
    client = InfluxClient(influx_server.url, who="test")
    name = f"t_{uuid.uuid4().hex[:10]}"
    client.execute(f'CREATE DATABASE "{name}"')
    yield client, name
    if influx_server.running:
        client.execute(f'DROP DATABASE "{name}"')
