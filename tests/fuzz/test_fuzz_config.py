"""Fuzz the text parsers of settings and options: a value, or one InputError/ConfigError naming the field."""

from __future__ import annotations

from datetime import UTC, timedelta

from hypothesis import given
from hypothesis import strategies as st
from tests.fuzz.conftest import FUZZ

from sparkhu.config import Settings
from sparkhu.errors import ConfigError, InputError
from sparkhu.timeaxis import format_duration, parse_duration, parse_offset, parse_time

TIMEISH = st.text(alphabet="0123456789-+:TZ. ²٣e", max_size=30) | st.datetimes().map(lambda d: d.isoformat())
SPANISH = st.text(alphabet="0123456789.+-eE smhdwinuc²", max_size=16) | st.text(max_size=16)


@FUZZ
@given(text=TIMEISH | st.text(max_size=40))
def test_parse_time_gives_an_aware_utc_instant_or_names_the_field(text: str):
    try:
        moment = parse_time(text, "start")
    except InputError as exc:
        assert exc.field == "start"
        return
    assert moment.tzinfo is not None and moment.utcoffset() == timedelta(0) and moment.tzinfo == UTC


@FUZZ
@given(text=SPANISH)
def test_parse_duration_and_offset_give_a_span_or_name_the_field(text: str):
    try:
        span = parse_duration(text, "period")
    except InputError as exc:
        assert exc.field == "period"
    else:
        assert span > timedelta(0)
    try:
        offset = parse_offset(text, "shift")
    except InputError as exc:
        assert exc.field == "shift"
    else:
        assert isinstance(offset, timedelta) or offset in ("end_now", "start_now")


@FUZZ
@given(micros=st.integers(1, 10**15))
def test_a_formatted_duration_parses_back_to_itself(micros: int):
    span = timedelta(microseconds=micros)
    assert parse_duration(format_duration(span)) == span


KEYS = ["SPARKHU_STORAGE__LAKE", "SPARKHU_PIPELINE__SCHEDULE", "SPARKHU_GATEWAY__PORT", "SPARKHU_BUS__URI"]


@FUZZ
@given(key=st.sampled_from(KEYS), value=st.text(max_size=30).filter(lambda v: "\0" not in v))
def test_settings_from_any_variable_load_or_say_which_variable(key: str, value: str):
    try:
        Settings.load(toml_path=None, env={"SPARKHU_HOME": "/tmp/sparkhu-fuzz", key: value})
    except ConfigError as exc:
        assert f"environment variable {key}" in str(exc)
