"""One-line errors for the ``cnnbench`` command.

Every error a user can cause with a bad value is printed as at most three lines: what was
wrong, the value, and the valid choices or the fix. jsonargparse's Union reports
("Does not validate against any of the Union subtypes", a ``Namespace(...)`` dump) and
argparse's usage dumps are reduced to their one meaningful line. ``--traceback`` or
``CNNBENCH_TRACEBACK=1`` shows the full traceback instead.

Example:
    >>> msg = 'Parser key "trainer.max_epochs":\\n  Does not validate against any of the Union subtypes\\n'
    >>> msg += "  Errors:\\n    - Expected a <class 'int'>\\n    - Expected a <class 'NoneType'>\\n  Given value: x"
    >>> format_parse_error(msg)
    "--trainer.max_epochs: expected int, got 'x'"
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import TYPE_CHECKING, Any

from cnnbench.core.choices import did_you_mean

if TYPE_CHECKING:
    from cnnbench.cli.invocation import Invocation

TRACEBACK_ENV = "CNNBENCH_TRACEBACK"
UNION_HEAD = "Does not validate against any of the Union subtypes"


def want_traceback(args: list[str]) -> bool:
    """True (and ``--traceback`` removed from ``args``) when full tracebacks are asked for."""
    if "--traceback" in args:
        args.remove("--traceback")
        os.environ[TRACEBACK_ENV] = "1"
    return os.environ.get(TRACEBACK_ENV, "") not in ("", "0")


def _chain(err: BaseException) -> list[BaseException]:
    """``err`` and its explicit causes, outermost first (jsonargparse wraps constructor errors)."""
    out = [err]
    while out[-1].__cause__ is not None and len(out) < 20:
        out.append(out[-1].__cause__)  # type: ignore[arg-type]
    return out


def _known_types() -> tuple[type[BaseException], ...]:
    from cnnbench.checkpoint import CheckpointError
    from cnnbench.core.compat import UnsupportedVersionError
    from cnnbench.data.files import DataError

    known = (ValueError, TypeError, DataError, CheckpointError, FileNotFoundError, argparse.ArgumentError)
    return (*known, UnsupportedVersionError)


def report_error(command: str, err: BaseException, invocation: Invocation | None = None) -> int:
    """Print ``err`` as at most three lines and return the exit code; re-raise bugs.

    Exit codes: 2 for a bad value, 3 for a diverged fit. Errors that are not about a value
    the user gave (a bug, a crash inside torch) keep their traceback.
    """
    if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
        raise err
    from cnnbench.models.base import DivergedError

    chain = _chain(err)
    diverged = next((e for e in chain if isinstance(e, DivergedError)), None)
    if diverged is not None:
        print(f"cnnbench {command}: diverged: {diverged}", file=sys.stderr)
        return 3
    known = [e for e in chain if isinstance(e, _known_types())]
    if not known:
        raise err
    # the innermost error is the model's or data module's own message; jsonargparse's
    # wrappers around it only add the Union report and a Namespace dump
    inner = known[-1]
    # a parse error names its option ("Parser key ...") only in an outer wrapper
    parsed = next((e for e in known if 'Parser key "' in str(e)), None)
    if parsed is not None or isinstance(inner, argparse.ArgumentError) or UNION_HEAD in str(inner):
        text = str(parsed if parsed is not None else inner)
        message = format_parse_error(text, invocation, getattr(err, "cnnbench_options", None))
    else:
        message = _trim(str(inner))
    print(f"cnnbench {command}: error: {message}", file=sys.stderr)
    return 2


def _trim(text: str, lines: int = 3) -> str:
    kept = [ln.strip() for ln in text.strip().splitlines() if ln.strip() and not ln.lstrip().startswith("Given value")]
    return "\n  ".join(kept[:lines]) if kept else text.strip()


def _union_errors(message: str) -> list[str]:
    """The ``- ...`` items under ``Errors:`` of a jsonargparse Union report, continuation
    lines joined, without the "Expected a NoneType" alternative of optional arguments."""
    items: list[str] = []
    in_errors = False
    for line in message.splitlines():
        stripped = line.strip()
        if stripped == "Errors:":
            in_errors = True
        elif stripped.startswith("Given value"):
            in_errors = False
        elif in_errors and stripped.startswith("- "):
            items.append(stripped[2:])
        elif in_errors and items and stripped:
            items[-1] += " " + stripped
    return [i for i in items if "NoneType" not in i] or items


def _given_value(message: str) -> str | None:
    found = re.search(r"^\s*Given value: (.*)$", message, re.M)
    return found.group(1).strip() if found else None


def option_hint(word: str, options: list[str], prefix: str = "") -> str:
    """`` Did you mean --x?`` for the (at most two) closest options: unquoted, as typed on a command line.

    Example:
        >>> option_hint("pol", ["pool", "padding"], prefix="--model.")
        ' Did you mean --model.pool?'
    """
    return did_you_mean(word, options, n=2, prefix=prefix, quote="")


def _options_of(cls: Any, key: str) -> list[str]:
    """The ``--model.*`` / ``--data.*`` names of ``cls`` a user can give (linked ones left out)."""
    from cnnbench.core.signature import accepted_kwargs
    from cnnbench.core.vocab import LINKED_ARGUMENTS

    names = sorted(accepted_kwargs(cls) or ())
    return [n for n in names if n not in LINKED_ARGUMENTS] if key == "model" else names


def format_parse_error(message: str, invocation: Invocation | None = None, options: list[str] | None = None) -> str:
    """Reduce a jsonargparse/argparse error message to at most three short lines.

    Args:
        message: The parser's message (possibly a multi-line Union report).
        invocation: The prepared command line (its model and data classes list the valid
            options of ``--model.*`` / ``--data.*``).
        options: Every option string of the parser, for close matches of unknown options.
    """
    key_match = re.search(r'Parser key "([^"]+)"', message)
    key = key_match.group(1) if key_match else None
    if message.startswith("unrecognized arguments:"):
        given = message.split(":", 1)[1].split()
        flags = [g.split("=")[0] for g in given if g.startswith("--")]
        hint = option_hint(flags[0], options or []) if flags else ""
        return (
            f"unknown option {' '.join(given[:2])} (options are not abbreviated).{hint}\n"
            f"  See `cnnbench {invocation.subcommand if invocation else 'fit'} --help` for the options."
        )
    errors = _union_errors(message)
    if key is not None and not errors:
        rest = " ".join(ln.strip() for ln in message.split(":", 1)[1].splitlines() if ln.strip())
        literal = re.search(r"Expected a typing\.Literal\[(.*)\]\. Got value: (.*)$", rest)
        if literal:
            choices = ", ".join(c.strip().strip("'\"") for c in literal.group(1).split(","))
            return f"--{key}: {literal.group(2).strip()!r} is not one of {choices}"
        return f"--{key}: {_trim(rest, 2)}"
    if key is None or not errors:
        return _trim(message)
    first = errors[0]
    unknown = re.search(r"Option '([^']+)' is not accepted", first)
    if unknown and key in ("model", "data"):
        name, cls = invocation.names(key) if invocation else (None, None)
        name = name or (cls.__name__ if cls is not None else key)
        valid = _options_of(cls, key) if cls is not None else []
        option = f"--{key}.{unknown.group(1)}"
        hint = option_hint(unknown.group(1), valid, prefix=f"--{key}.")
        listing = f"\n  Valid: {', '.join('--' + key + '.' + v for v in valid)}" if valid else ""
        return f"{option} is not an option of {key} {name!r}.{hint}{listing}"
    types = [m.group(1) for e in errors if (m := re.fullmatch(r"Expected a <class '([\w.]+)'>", e))]
    value = _given_value(message)
    if types and len(types) == len(errors):
        return f"--{key}: expected {' or '.join(types)}, got {value!r}"
    first = re.sub(r"^Problem with given class_path '[^']+':\s*", "", first)
    return f"--{key}: {_trim(first, 2)}"
