"""The command line's one error type, shared by the commands and the library code they call."""

from __future__ import annotations


class UsageError(Exception):
    """A command-line mistake: printed as one line, exit status 2."""
