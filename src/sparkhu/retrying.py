"""One retry policy for sparkhu: a number of extra attempts with exponential back-off, on tenacity.

A :class:`RetryPolicy` makes up to ``retries`` extra attempts and waits ``backoff_s · 2^n``
seconds after the ``n``-th failed one (``n`` from 0: 0.5 s, 1 s, 2 s... with the default
0.5 s). It retries in two ways:

* :meth:`RetryPolicy.call` calls a function again while it raises an :class:`Exception`
  (``KeyboardInterrupt`` and the like go through at once) and returns a :class:`Tried`: the
  value, or the error of the last attempt, and how many attempts were made;
* :meth:`RetryPolicy.repeat` calls a step again while it reports work left (the step keeps
  its own state, e.g. the series still to retry); exceptions go through.

Both sleep on ``stop`` (a :class:`threading.Event`) when one is given: setting it cuts the
back-off short and ends the retries.

>>> calls = []
>>> def flaky() -> int:
...     calls.append(1)
...     if len(calls) < 3:
...         raise OSError(f"disk busy ({len(calls)})")
...     return len(calls)
>>> RetryPolicy(retries=2, backoff_s=0.0).call(flaky)
Tried(value=3, error=None, attempts=3)
>>> RetryPolicy(retries=1, backoff_s=0.0).call(lambda: 1 / 0).error
ZeroDivisionError('division by zero')
>>> [RetryPolicy(backoff_s=0.5).delay_s(n) for n in range(3)]
[0.5, 1.0, 2.0]
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import tenacity
from tenacity.stop import stop_base

from sparkhu.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Tried(Generic[T]):
    """How a retried call ended: its value, or the error of its last attempt, and the attempts made."""

    value: T | None
    error: Exception | None
    attempts: int


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` extra attempts after a failure, waiting ``backoff_s · 2^n`` after the ``n``-th (from 0)."""

    retries: int = 2
    backoff_s: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError(f"retries must be an integer >= 0, got {self.retries!r}")
        if not self.backoff_s >= 0:
            raise ConfigError(f"backoff_s must be >= 0 seconds, got {self.backoff_s!r}")

    def delay_s(self, failed: int) -> float:
        """Seconds to wait after failed attempt number ``failed`` (0 for the first)."""
        return self.backoff_s * 2**failed

    def call(
        self,
        fn: Callable[[], T],
        *,
        on_failure: Callable[[int, Exception], None] | None = None,
        stop: threading.Event | None = None,
    ) -> Tried[T]:
        """Call ``fn`` until it returns, at most ``retries + 1`` times.

        ``on_failure(attempt, error)`` is told of every failed attempt (numbered from 1), the
        last one included, before the back-off.
        """
        attempts = 0
        value: T | None = None
        error: Exception | None = None
        for attempt in self._retrying(tenacity.retry_if_exception_type(Exception), stop):
            if attempts and stop is not None and stop.is_set():
                break  # stopped during the back-off: no further attempt
            attempts += 1
            with attempt:
                value = fn()
            error = _error_of(attempt.retry_state)
            if error is not None and on_failure is not None:
                on_failure(attempts, error)
        return Tried(None, error, attempts) if error is not None else Tried(value, None, attempts)

    def repeat(self, step: Callable[[], bool], *, stop: threading.Event | None = None) -> int:
        """Call ``step`` while it returns True (work left), at most ``retries + 1`` times.

        Returns the number of attempts made.
        """
        attempts = 0
        for attempt in self._retrying(tenacity.retry_if_result(bool), stop):
            if attempts and stop is not None and stop.is_set():
                break
            attempts += 1
            with attempt:
                left = step()
            if _error_of(attempt.retry_state) is None:
                attempt.retry_state.set_result(left)  # leaving `with` recorded None
        return attempts

    def _retrying(self, retry: tenacity.retry_base, stop: threading.Event | None) -> tenacity.Retrying:
        stops: stop_base = tenacity.stop_after_attempt(self.retries + 1)
        if stop is not None:
            stops = stops | tenacity.stop_when_event_set(stop)
        return tenacity.Retrying(
            stop=stops,
            wait=lambda state: self.delay_s(state.attempt_number - 1),
            retry=retry,
            sleep=tenacity.sleep_using_event(stop) if stop is not None else time.sleep,
            # out of attempts: end quietly, the caller keeps the last outcome
            retry_error_callback=lambda state: None,
        )


def _error_of(state: tenacity.RetryCallState) -> Exception | None:
    """The exception of the attempt just made (others than Exception are re-raised by tenacity)."""
    error = state.outcome.exception() if state.outcome is not None else None
    return error if isinstance(error, Exception) else None
