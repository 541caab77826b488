"""Property-based fuzzing of every decoder and parser: nothing escapes, nothing valid is lost.

Each test here feeds hypothesis-generated input — well-formed records mixed with poison ones,
or plain arbitrary bytes — to one entry point of data (the CSV reader, the line cutter, the
JSON and Arrow decoders of the bus, the time and duration parsers of settings and options) and
asserts the contract of :data:`sparkhu.series.POINT_RULES`: no exception escapes but the
documented error for input that is not data at all, every valid record is kept, every invalid
one is quarantined with a reason. Example counts are moderate so that the folder stays well
under a minute (``SPARKHU_FUZZ_EXAMPLES=1000`` digs deeper); no example database is written (a
failure prints the example that reproduces it).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("SPARKHU_FUZZ_EXAMPLES", "60")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FUZZ = settings.get_profile("fuzz")
"""The settings every fuzz test runs with (decorate with ``@FUZZ``)."""
