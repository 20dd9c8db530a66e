"""The errors a user reads before any heavy work starts: each names the problem (the notebook, profile and key, or
the file and what to do)."""

from __future__ import annotations


class ParamError(ValueError):
    """Invalid parameters; the message names the notebook, profile and key."""


class DataError(ValueError):
    """Missing or malformed data; the message names the file and what to do."""
