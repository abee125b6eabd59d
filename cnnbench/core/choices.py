"""Checking a value against its vocabulary, and the one "did you mean" hint.

Example:
    >>> check_choice("avg", ("max", "avg"), "pool")
    'avg'
    >>> did_you_mean("paddnig", ["padding", "pool"])
    " Did you mean 'padding'?"
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(word: str, options: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` entries of ``options`` that look like a misspelling of ``word`` (difflib, ratio ≥ 0.6)."""
    return difflib.get_close_matches(word, sorted(set(options)), n=n, cutoff=0.6)


def did_you_mean(
    word: str, options: Iterable[str], n: int = 2, prefix: str = "", quote: str = "'", lead: str = " Did you mean "
) -> str:
    """`` Did you mean 'x'?`` (or ``'x' or 'y'``) for the closest options, or ``""`` when none is close.

    ``prefix`` is put before each suggestion (``"--model."`` for a command-line option); ``quote``
    around it (``""`` for options, as a shell shows them); ``lead`` opens the hint (``"; did you mean "``
    inside a clause).

    Example:
        >>> did_you_mean("pol", ["pool", "padding"], prefix="--model.", quote="")
        ' Did you mean --model.pool?'
    """
    close = close_matches(word, options, n=n)
    if not close:
        return ""
    return lead + " or ".join(f"{quote}{prefix}{c}{quote}" for c in close) + "?"


def check_choice(value: str, valid: Iterable[str], what: str) -> str:
    """Return ``value`` if it is one of ``valid``; else raise ``ValueError`` listing them all.

    Example:
        >>> try:
        ...     check_choice("maxx", ("max", "avg"), "pool")
        ... except ValueError as err:
        ...     print(err)
        Unknown pool 'maxx'; valid: max, avg. Did you mean 'max'?
    """
    valid = tuple(valid)
    if value not in valid:
        raise ValueError(
            f"Unknown {what} {value!r}; valid: {', '.join(valid)}{_sentence(did_you_mean(str(value), valid, 1))}"
        )
    return value


def _sentence(hint: str) -> str:
    return f".{hint}" if hint else ""
