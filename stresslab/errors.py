"""Exception and warning hierarchy of stresslab.

Every error a user can cause by bad input is a :class:`StresslabError`; the CLI prints its
message on one line and exits with status 2. A defect of stresslab is an
:class:`InternalError` (or any other exception): the CLI prints one line, saves the trace
to a file and exits with status 1.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "StresslabError",
    "ScenarioError",
    "PortfolioError",
    "StresslabWarning",
    "InternalError",
    "did_you_mean",
]


class StresslabError(Exception):
    """Base class of all errors caused by bad input to stresslab."""


class ScenarioError(StresslabError, ValueError):
    """A scenario file or object is invalid (names file, key path, value, what is allowed)."""


class PortfolioError(StresslabError, ValueError):
    """A loan book is invalid (names file, row, column, value, what is allowed)."""


class StresslabWarning(UserWarning):
    """Something is suspicious but not wrong (e.g. a scenario names an industry absent from the book)."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""`` if none is close."""
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


class InternalError(Exception):
    """A defect of stresslab itself, not of its input: the CLI exits 1, saves the trace and asks for a report.

    Not a :class:`StresslabError`: a user cannot fix it by changing the input. Any other
    unexpected exception reaching the CLI is treated the same way.
    """
