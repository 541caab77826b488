"""A local InfluxDB 1.x server for tests, benchmarks and demos: Debian's ``influxd``, in a folder.

:class:`InfluxServer` writes its own configuration file (HTTP and RPC on free ``127.0.0.1`` ports,
meta, data and WAL under ``root``, no reporting, no monitor database), starts ``influxd`` with it —
no system service is involved — and waits until ``/ping`` answers. ``stop()`` ends it (SIGTERM,
then SIGKILL); ``kill()`` kills it at once (a crash). Its :attr:`~InfluxServer.url` is what an
``influxdb`` source or sink takes.

>>> server = InfluxServer("/tmp/influx-doc")  # nothing runs until start() (or ``with``)
>>> server.url.startswith("http://127.0.0.1:"), server.running
(True, False)
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from sparkhu.errors import BackendUnavailable, ConfigError
from sparkhu.stream.tansu import free_port

__all__ = ["InfluxServer", "find_influxd"]


def find_influxd() -> Path | None:
    """Path of ``influxd`` (Debian package ``influxdb``), or None."""
    found = shutil.which("influxd") or ("/usr/bin/influxd" if Path("/usr/bin/influxd").is_file() else None)
    return Path(found) if found else None


class InfluxServer:
    """An ``influxd`` process over ``root`` (see the module docstring)."""

    def __init__(self, root: Path | str, *, port: int | None = None, start_timeout: float = 30.0) -> None:
        binary = find_influxd()
        if binary is None:
            raise ConfigError("influxd not found: install the Debian package `influxdb` (make system-deps)")
        self.binary = binary
        self.root = Path(root)
        self.port = port or free_port()
        self.rpc_port = free_port()
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._process is not None and self._process.poll() is None

    def config_text(self) -> str:
        """The configuration file this server runs with."""
        return "\n".join(
            [
                "reporting-disabled = true",
                f'bind-address = "127.0.0.1:{self.rpc_port}"',
                "[meta]",
                f'  dir = "{self.root / "meta"}"',
                "[data]",
                f'  dir = "{self.root / "data"}"',
                f'  wal-dir = "{self.root / "wal"}"',
                "  query-log-enabled = false",
                '  wal-fsync-delay = "0s"',
                "[http]",
                f'  bind-address = "127.0.0.1:{self.port}"',
                "  log-enabled = false",
                "  max-body-size = 0",
                "[monitor]",
                "  store-enabled = false",
                "[subscriber]",
                "  enabled = false",
                "[continuous_queries]",
                "  enabled = false",
                "[logging]",
                '  level = "warn"',
                "",
            ]
        )

    def start(self) -> InfluxServer:
        """Write the config, launch ``influxd`` and wait until ``/ping`` answers."""
        if self.running:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "influxdb.conf"
        config.write_text(self.config_text())
        log = (self.root / "influxd.log").open("ab")
        try:
            self._process = subprocess.Popen(
                [str(self.binary), "-config", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        except OSError as exc:
            raise BackendUnavailable(self.url, f"cannot start {self.binary}: {exc}") from exc
        finally:
            log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = (self.root / "influxd.log").read_text(errors="replace")[-500:]
                raise BackendUnavailable(
                    self.url, f"influxd exited with code {self._process.returncode}: {tail}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=0.5):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        self.kill()
        raise BackendUnavailable(self.url, f"influxd did not answer /ping within {self.start_timeout} s")

    def stop(self) -> None:
        """End the server gracefully (its data stays in ``root``)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process.wait(timeout=10)
        self._process = None

    def kill(self) -> None:
        """Kill the server at once (as a crash would)."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait(timeout=10)
            self._process = None

    def __enter__(self) -> InfluxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
