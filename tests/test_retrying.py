"""The one retry policy: attempts, exponential back-off, interruptible sleep, what goes through."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

import pytest

from sparkhu.errors import ConfigError
from sparkhu.retrying import RetryPolicy, Tried


def _failing(times: int, calls: list[float]) -> Callable[[], str]:
    """A function that raises on its first ``times`` calls, noting the time of each call."""

    def fn() -> str:
        calls.append(time.perf_counter())
        if len(calls) <= times:
            raise OSError(f"failure {len(calls)}")
        return "ok"

    return fn


def test_call_retries_until_the_function_returns() -> None:
    calls: list[float] = []
    tried = RetryPolicy(retries=2, backoff_s=0.0).call(_failing(2, calls))
    assert tried == Tried("ok", None, 3)
    assert len(calls) == 3


def test_call_gives_up_after_the_extra_attempts_with_the_last_error() -> None:
    calls: list[float] = []
    failures: list[tuple[int, str]] = []
    tried = RetryPolicy(retries=2, backoff_s=0.0).call(
        _failing(10, calls),
        on_failure=lambda attempt, error: failures.append((attempt, str(error))),
    )
    assert (tried.value, str(tried.error), tried.attempts) == (None, "failure 3", 3)
    assert isinstance(tried.error, OSError)
    assert failures == [(1, "failure 1"), (2, "failure 2"), (3, "failure 3")]
    assert RetryPolicy(retries=0, backoff_s=0.0).call(_failing(10, [])).attempts == 1


def test_back_off_doubles_after_each_failed_attempt() -> None:
    calls: list[float] = []
    RetryPolicy(retries=2, backoff_s=0.05).call(_failing(10, calls))
    waits = [b - a for a, b in itertools.pairwise(calls)]
    assert waits[0] >= 0.05 and waits[1] >= 0.1
    assert [RetryPolicy(backoff_s=0.25).delay_s(n) for n in range(4)] == [0.25, 0.5, 1.0, 2.0]


def test_a_stop_event_cuts_the_back_off_short_and_ends_the_retries() -> None:
    stop = threading.Event()
    calls: list[float] = []
    threading.Timer(0.05, stop.set).start()
    began = time.perf_counter()
    tried = RetryPolicy(retries=5, backoff_s=30.0).call(_failing(10, calls), stop=stop)
    assert time.perf_counter() - began < 5.0
    assert tried.attempts == 1 and str(tried.error) == "failure 1"
    assert RetryPolicy(retries=3, backoff_s=30.0).repeat(lambda: True, stop=stop) == 1


def test_base_exceptions_are_not_retried() -> None:
    calls: list[int] = []

    def interrupted() -> None:
        calls.append(1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        RetryPolicy(retries=3, backoff_s=0.0).call(interrupted)
    assert len(calls) == 1


def test_repeat_runs_a_step_while_it_has_work_left() -> None:
    left = [3]

    def step() -> bool:
        left[0] -= 1
        return left[0] > 0

    assert RetryPolicy(retries=5, backoff_s=0.0).repeat(step) == 3
    assert RetryPolicy(retries=2, backoff_s=0.0).repeat(lambda: True) == 3
    assert RetryPolicy(retries=2, backoff_s=0.0).repeat(lambda: False) == 1


def test_repeat_lets_exceptions_through() -> None:
    calls: list[int] = []

    def step() -> bool:
        calls.append(1)
        raise ValueError("broken step")

    with pytest.raises(ValueError, match="broken step"):
        RetryPolicy(retries=3, backoff_s=0.0).repeat(step)
    assert len(calls) == 1


def test_bad_policies_are_rejected() -> None:
    with pytest.raises(ConfigError, match="retries must be an integer >= 0, got -1"):
        RetryPolicy(retries=-1)
    with pytest.raises(ConfigError, match="retries must be an integer >= 0, got True"):
        RetryPolicy(retries=True)
    with pytest.raises(ConfigError, match=r"backoff_s must be >= 0 seconds, got -0\.5"):
        RetryPolicy(backoff_s=-0.5)
