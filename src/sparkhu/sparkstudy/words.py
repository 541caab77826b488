"""The dictionary of the strong-password rule and the rule's character classes, in one place.

The word list is the ``web2`` list (Webster's 2nd, ~234,000 words) that ships inside the
``english-words`` package: nothing is downloaded. Words are lower-cased and letters only.

The rule (the tuning study's task 2): a line is a *strong password* when it has 8–32
characters, at least one upper-case letter, one lower-case letter, one digit and one
punctuation character (ASCII classes, ``string.punctuation``), and its ASCII letters, lower-cased
(everything else dropped), are not a dictionary word — so ``Sunshine#2024`` is weak.

>>> is_strong("Tr0ub4dor&3x"), is_strong("Sunshine#2024"), is_strong("short1A!")
(True, False, True)
>>> is_strong("alllower1!x")
False
"""

from __future__ import annotations

import functools
import string

import pyarrow as pa

MIN_LEN, MAX_LEN = 8, 32
UPPER, LOWER, DIGITS, PUNCT = (
    frozenset(string.ascii_uppercase),
    frozenset(string.ascii_lowercase),
    frozenset(string.digits),
    frozenset(string.punctuation),
)
# The same classes as regular expressions for Spark SQL (Java), RE2 (Arrow) and DuckDB.
UPPER_RE, LOWER_RE, DIGIT_RE = "[A-Z]", "[a-z]", "[0-9]"
PUNCT_RE = r"[!-/:-@\[-`{-~]"  # the four ASCII ranges of string.punctuation
NOT_LETTER_RE = "[^A-Za-z]"  # dropped before lower-casing


@functools.cache
def dictionary() -> frozenset[str]:
    """The word list (lower-case, letters only), loaded once per process from the package."""
    from english_words import get_english_words_set

    return frozenset(get_english_words_set(["web2"], lower=True, alpha=True))


@functools.cache
def dictionary_array() -> pa.StringArray:
    """The word list as a sorted Arrow string array, built once per process."""
    return pa.array(sorted(dictionary()), pa.string())


def dictionary_table() -> pa.Table:
    """The word list as a one-column (``word``) Arrow table, for joins.

    >>> dictionary_table().num_rows > 200_000
    True
    """
    return pa.table({"word": dictionary_array()})


def letters_of(line: str) -> str:
    """The ASCII letters of ``line``, lower-cased: what the dictionary is asked about.

    >>> letters_of("Sunshine#2024")
    'sunshine'
    """
    return "".join(c for c in line if c in UPPER or c in LOWER).lower()


def is_strong(line: str) -> bool:
    """The rule, character by character: the original's Python UDF body."""
    if not MIN_LEN <= len(line) <= MAX_LEN:
        return False
    chars = set(line)
    if not (chars & UPPER and chars & LOWER and chars & DIGITS and chars & PUNCT):
        return False
    return letters_of(line) not in dictionary()
