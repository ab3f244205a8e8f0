"""The one base class of errors the user can fix (a path, a value, a file, a model pairing).

The CLI prints such an error as one line ``error: …`` and exits with code 2; anything else is a bug and keeps its
traceback. Library users catch :class:`UserError` the same way.
"""

from __future__ import annotations


class UserError(Exception):
    """Something in what was asked for is wrong; the message says what, where, and what was found."""


class TrainingError(UserError, RuntimeError):
    """A run that cannot start or go on as configured (no teacher for KD, a non-finite loss, a changed config, no
    training example left)."""
