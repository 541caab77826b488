"""The platform: long-lived services run together, each in its own thread, with one stop event.

A service is ``target(stop_event)``, running until the event is set, with optional live
``figures`` (what ``sparkhu up`` shows) and an optional ``ready`` check (the gateway accepts
connections). A service that fails is reported and stops the platform: no silent half-running
system. :mod:`sparkhu.app.assembly` decides which services run; this module only runs them.

Stopping is graceful and bounded: :meth:`Platform.stop` sets the event, so every service
finishes the round in hand (a sink stores and commits its batch, the predictor its forecasts,
consumers leave their groups) and returns; whoever is still running after ``timeout`` seconds
is named and left behind (the threads are daemons, so the process exits anyway; every writer
is at-least-once, so nothing is lost). :class:`StopSignals` turns ``SIGTERM`` into such a
stop: a process manager's request to stop ends ``sparkhu up`` with exit status 0.

>>> platform = Platform()
>>> platform.add("counter", lambda stop: stop.wait(5), figures=lambda: {"n": 1.0})
>>> platform.start(); platform.stop(timeout=5.0), platform.failures()  # none left behind, none failed
([], [])
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sparkhu.errors import ConfigError, SparkhuError

log = logging.getLogger(__name__)

Figures = Callable[[], dict[str, float]]


@dataclass
class Service:
    """One service of the platform: see the module docstring."""

    name: str
    target: Callable[[threading.Event], Any]
    figures: Figures | None = None
    ready: Callable[[], bool] | None = None
    thread: threading.Thread | None = None
    error: BaseException | None = None


@dataclass
class Platform:
    """Services run in threads with one stop event; ``start``, then ``wait_ready`` and ``stop``."""

    stop_event: threading.Event = field(default_factory=threading.Event)
    services: list[Service] = field(default_factory=list)
    url: str | None = None
    """Where the gateway serves, once one is added."""

    def add(
        self,
        name: str,
        target: Callable[[threading.Event], Any],
        *,
        figures: Figures | None = None,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        """Register a service: ``target(stop_event)`` runs until the event is set."""
        if any(s.name == name for s in self.services):
            raise ConfigError(f"two services are named {name!r}")
        self.services.append(Service(name, target, figures, ready))

    def figures(self) -> dict[str, dict[str, float]]:
        """Each service's live figures, by service name."""
        return {s.name: s.figures() for s in self.services if s.figures is not None}

    def start(self) -> None:
        """Start every registered service."""
        for service in self.services:
            service.thread = threading.Thread(
                target=self._guard, args=(service,), name=service.name, daemon=True
            )
            service.thread.start()

    def _guard(self, service: Service) -> None:
        try:
            service.target(self.stop_event)
        except BaseException as exc:
            service.error = exc
            # Our own errors are reported as one line by whoever stops the platform.
            log.debug("service %s failed", service.name, exc_info=not isinstance(exc, SparkhuError))
            self.stop_event.set()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until every service with a readiness check is ready, or the platform stopped."""
        deadline = time.monotonic() + timeout
        for service in self.services:
            while service.ready is not None and not service.ready() and not self.stop_event.is_set():
                if time.monotonic() > deadline:
                    raise ConfigError(f"{service.name} was not ready within {timeout:.0f} s")
                time.sleep(0.05)

    def failures(self) -> list[tuple[str, BaseException]]:
        """Services that ended with an error."""
        return [(s.name, s.error) for s in self.services if s.error is not None]

    def raise_failure(self) -> None:
        """Raise the first failure as a :class:`SparkhuError` (one line for the CLI), if any."""
        for name, error in self.failures():
            if isinstance(error, SparkhuError):
                raise error
            raise SparkhuError(f"service {name!r} failed: {type(error).__name__}: {error}") from error

    def stop(self, timeout: float = 10.0) -> list[str]:
        """Ask every service to stop and wait up to ``timeout`` s in all; returns those still running."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for service in self.services:
            if service.thread is not None:
                service.thread.join(max(0.0, deadline - time.monotonic()))
        late = [s.name for s in self.services if s.thread is not None and s.thread.is_alive()]
        if late:
            log.warning("stopped waiting after %.0f s for: %s", timeout, ", ".join(late))
        return late


class StopSignals:
    """While entered (in the main thread): ``SIGTERM`` stops the platform given to :meth:`attach` gracefully.

    Before a platform is attached (a command still preparing), ``SIGTERM`` ends the command at
    once with exit status 0 (``SystemExit(0)`` raised in the main thread, so open stores close).
    :attr:`received` names the signal once one came. Elsewhere than the main thread, nothing is
    installed (Python delivers signals there only).

    >>> with StopSignals() as signals:
    ...     platform = Platform()
    ...     signals.attach(platform)
    ...     signal.raise_signal(signal.SIGTERM)
    >>> signals.received, platform.stop_event.is_set()
    ('SIGTERM', True)
    """

    def __init__(self, signals: tuple[signal.Signals, ...] = (signal.SIGTERM,)) -> None:
        self.signals = signals
        self.received: str | None = None
        self._platform: Platform | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def attach(self, platform: Platform) -> None:
        """From now on a signal stops ``platform`` (a signal that came before stops it at once)."""
        self._platform = platform
        if self.received is not None:
            platform.stop_event.set()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, _frame: object) -> None:
        self.received = signal.Signals(signum).name
        if self._platform is None:
            raise SystemExit(0)
        log.info("%s received: stopping", self.received)
        self._platform.stop_event.set()
