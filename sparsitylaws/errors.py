"""Errors that mean "the user's input is wrong", as opposed to a bug in this package.

The CLI turns every :class:`SparsityLawsError` into a one-line message on stderr and
exit status 2, never a traceback.  Library callers get an ordinary ``ValueError``
subclass, so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class SparsityLawsError(ValueError):
    """Bad input: a file, column, argument or law set that cannot be used as given.

    The message must name the offending thing (file, column, row, argument).
    """


class SchemaError(SparsityLawsError):
    """A measurement table that does not follow the schema (names file, column, first bad row)."""


class FitInputError(SparsityLawsError):
    """Data that cannot be fitted as asked (too few points, unknown form, ...)."""


class LawSetError(SparsityLawsError):
    """A law-set file that cannot be read (unknown format version, missing run, ...)."""


class MeasureError(SparsityLawsError):
    """A checkpoint, text or option that the measurement stack cannot use."""
