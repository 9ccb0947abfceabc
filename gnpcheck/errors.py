"""The exceptions gnpcheck raises on bad input.

Every message names the argument, the value it got and what is allowed, in the form
``"<name>=<value>, but <constraint>"``. Both classes subclass the built-in exception a
caller would expect, so ``except ValueError`` keeps working. An operation a layer cannot
honour raises :class:`UnsupportedOperationError` (a ``NotImplementedError``) instead of
returning a wrong result.
"""

from __future__ import annotations

__all__ = [
    "GnpcheckError",
    "InvalidArgumentError",
    "InvalidTypeError",
    "UnsupportedOperationError",
]


class GnpcheckError(Exception):
    """Base class of every error gnpcheck raises on purpose."""


class InvalidArgumentError(GnpcheckError, ValueError):
    """An argument has the right type but a value that is not allowed."""


class InvalidTypeError(GnpcheckError, TypeError):
    """An argument has a type that is not allowed."""


class UnsupportedOperationError(GnpcheckError, NotImplementedError):
    """An operation that is not implemented for this object, refused rather than answered
    wrongly (the message says what to use instead)."""
