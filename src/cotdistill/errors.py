"""The one base class of errors the user can fix (a path, a value, a file, a model pairing).

The CLI prints such an error as one line ``error: …`` and exits with code 2; anything else is a bug and keeps its
traceback. Library users catch :class:`UserError` the same way.
"""

from __future__ import annotations


class UserError(Exception):
    """Something in what was asked for is wrong; the message says what, where, and what was found."""
