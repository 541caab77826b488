"""The two jobs give the same counts in all three forms, and the known answers of the generator."""

from __future__ import annotations

import json
import string
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from sparkhu.errors import InputError, NotFoundError
from sparkhu.sparkstudy.jobs import check_job, run_embedded, run_spark
from sparkhu.sparkstudy.textgen import generate, parse_size
from sparkhu.sparkstudy.words import dictionary, is_strong, letters_of

# Each line with its verdict under the rule, written out by hand.
TRICKY = [
    ("Tr0ub4dor&3x", True),
    ("Sunshine#2024", False),  # its letters are a word
    ("Ab1!defg", True),  # 8 characters
    ("Ab1!def", False),  # 7
    ("Ab1!" + "x" * 28, True),  # 32
    ("Ab1!" + "x" * 29, False),  # 33
    ("ab1!xyzqw", False),  # no upper case
    ("AB1!XYZQW", False),  # no lower case
    ("Abc!xyzqw", False),  # no digit
    ("Abc1xyzqw", False),  # no punctuation
    ("", False),
    ("Éc0le!Xyzw", True),  # non-ASCII letters are in no class and not looked up
    ("Éc0le!xyzw", False),  # É is not an (ASCII) upper-case letter
    ("Ab1!ééééééééééééééééééééééééééééé", False),  # 33 characters, more bytes
    ("Dog$$$$1", False),  # "dog" is a word
    ("   Xq1! zz", True),
    # the longest words: past the 24 letters a dictionary slot holds inline
    ("Antidisestablishmentarianism1!", False),
    ("Antidisestablishmentarianisx1!", True),
    ("Tetraiodophenolphthalein-7", False),  # 24 letters
]


def write_tricky(path: Path, *, crlf: bool = False, final_newline: bool = True) -> None:
    end = "\r\n" if crlf else "\n"
    text = end.join(line for line, _ in TRICKY) + (end if final_newline else "")
    path.write_bytes(text.encode())


def test_the_rule_by_hand():
    assert [is_strong(line) for line, _ in TRICKY] == [verdict for _, verdict in TRICKY]
    assert letters_of("Sunshine#2024") in dictionary()


@pytest.mark.parametrize(("crlf", "final_newline"), [(False, True), (True, True), (False, False)])
def test_embedded_counts_tricky_lines(tmp_path: Path, crlf: bool, final_newline: bool):
    path = tmp_path / "t.txt"
    write_tricky(path, crlf=crlf, final_newline=final_newline)
    assert run_embedded("passwords", str(path)).counts == {"strong": sum(v for _, v in TRICKY)}
    firsts = Counter(line[:1] for line, _ in TRICKY)
    assert run_embedded("first_char", str(path)).counts == dict(sorted(firsts.items()))


def test_embedded_gives_the_generators_answers_across_blocks(passwords_file):
    path, stats = passwords_file
    # small blocks: lines cut at block edges must be counted once
    assert run_embedded("passwords", str(path), block_bytes=32_768).counts == {"strong": stats.strong}
    assert run_embedded("first_char", str(path), block_bytes=1000).counts == dict(
        sorted(stats.first_chars.items())
    )


def test_embedded_reads_any_fsspec_uri(tmp_path: Path):
    """A scheme pyarrow has no filesystem for (fsspec's ``memory``) is read through fsspec."""
    import fsspec

    local = tmp_path / "tricky.txt"
    write_tricky(local, crlf=True)
    uri = "memory://sparkhu-test/tricky.txt"
    with fsspec.open(uri, "wb") as f:
        f.write(local.read_bytes())
    try:
        assert run_embedded("passwords", uri).counts == run_embedded("passwords", str(local)).counts
        assert (
            run_embedded("first_char", uri, block_bytes=16).counts
            == run_embedded("first_char", str(local)).counts
        )
    finally:
        fsspec.filesystem("memory").rm("/sparkhu-test", recursive=True)
    with pytest.raises(InputError, match=r"input: cannot open nosuch://x/p.txt: unknown URI scheme 'nosuch'"):
        run_embedded("passwords", "nosuch://x/p.txt")


def test_generator_is_deterministic_and_sized(tmp_path: Path):
    a, b, c = (tmp_path / n for n in "abc")
    sa, sb, _ = generate(a, 50_000, seed=1), generate(b, 50_000, seed=1), generate(c, 50_000, seed=2)
    assert a.read_bytes() == b.read_bytes() and sa == sb
    assert a.read_bytes() != c.read_bytes()
    assert 49_000 < sa.bytes <= 50_000 == a.stat().st_size + (50_000 - sa.bytes)
    lines = a.read_text().splitlines()
    assert len(lines) == sa.lines and sum(map(is_strong, lines)) == sa.strong


def test_no_dictionary_word_of_six_letters_lacks_vowels():
    """The generator's strong lines rely on it."""
    assert not [w for w in dictionary() if len(w) >= 6 and not set(w) & set("aeiouy")]


def test_bad_job_form_size_and_input(tmp_path: Path):
    with pytest.raises(InputError, match="job: 'count' is not a job"):
        check_job("count")
    with pytest.raises(InputError, match="form: 'fast' is not a form"):
        check_job("passwords", "fast")
    with pytest.raises(InputError, match="size: '12 parsecs' is not a size"):
        parse_size("12 parsecs")
    with pytest.raises(InputError, match="size: '0MB' must be more than 0"):
        parse_size("0MB")
    with pytest.raises(NotFoundError, match="no such file"):
        run_embedded("passwords", str(tmp_path / "missing.txt"))


@pytest.fixture(scope="module")
def session() -> Iterator[object]:
    pytest.importorskip("pyspark")
    from sparkhu.engine.spark import SparkEngine

    engine = SparkEngine(
        "local[2]", conf={"spark.ui.enabled": "false", "spark.sql.files.maxPartitionBytes": "65536"}
    )
    yield engine.session
    engine.close()


@pytest.mark.spark
@pytest.mark.timeout(600)
def test_spark_forms_give_the_same_counts(session, passwords_file, tmp_path: Path):
    path, stats = passwords_file
    tricky = tmp_path / "tricky.txt"
    write_tricky(tricky, crlf=True)
    for uri, strong, firsts in (
        (str(path), stats.strong, stats.first_chars),
        (str(tricky), sum(v for _, v in TRICKY), Counter(line[:1] for line, _ in TRICKY)),
    ):
        for form in ("udf", "vectorised"):
            assert run_spark(session, "passwords", form, uri).counts == {"strong": strong}, (uri, form)
            got = run_spark(session, "first_char", form, uri).counts
            assert got == dict(sorted(firsts.items())), (uri, form, json.dumps(got))
        assert run_embedded("passwords", uri).counts == {"strong": strong}
    import fsspec

    with fsspec.open("memory://sparkhu-spark/p.txt", "wb") as f:
        f.write(b"Tr0ub4dor&3x\n")
    try:  # Spark cannot read what only fsspec serves: said before any job starts
        with pytest.raises(
            InputError, match="Spark reads through Hadoop filesystems, and memory:// is served"
        ):
            run_spark(session, "passwords", "vectorised", "memory://sparkhu-spark/p.txt")
    finally:
        fsspec.filesystem("memory").rm("/sparkhu-spark", recursive=True)


def test_punctuation_class_is_string_punctuation():
    import re

    from sparkhu.sparkstudy.words import PUNCT_RE

    assert {c for c in map(chr, range(128)) if re.fullmatch(PUNCT_RE, c)} == set(string.punctuation)


@pytest.mark.parametrize("crlf", [False, True])
def test_embedded_lines_longer_than_a_block(tmp_path: Path, crlf: bool):
    # blocks of 16 bytes: most lines span several reads, so the buffer grows and carries them
    path = tmp_path / "t.txt"
    write_tricky(path, crlf=crlf, final_newline=False)
    assert run_embedded("passwords", str(path), block_bytes=16).counts == {
        "strong": sum(v for _, v in TRICKY)
    }
    firsts = Counter(line[:1] for line, _ in TRICKY)
    assert run_embedded("first_char", str(path), block_bytes=16).counts == dict(sorted(firsts.items()))
