"""Errors that cross module boundaries, each carrying the exit code the CLI should use.

Messages are one line, say what went wrong and what to do, and never contain secrets.
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class StrongroomError(Exception):
    """Base class: an error with a one-line message meant for a person."""

    exit_code: int = EXIT_PROBLEM


class UsageError(StrongroomError):
    """Bad arguments or configuration (exit 2)."""

    exit_code = EXIT_USAGE


class OperationError(StrongroomError):
    """The operation found or met a problem (exit 1)."""

    exit_code = EXIT_PROBLEM
