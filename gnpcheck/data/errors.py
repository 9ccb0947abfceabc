"""The error raised for a missing or corrupt data file."""

from __future__ import annotations

from gnpcheck.errors import GnpcheckError

__all__ = ["DataFileError"]


class DataFileError(GnpcheckError, OSError):
    """A data file is missing, truncated or not in the expected format; the message names it."""
