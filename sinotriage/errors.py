"""The project's own error types.

An :class:`InputError` means "the user's input is wrong" (a file, an option, a config value):
the command-line interface shows it as one line and exits with code 2.  Anything else raised
inside sinotriage is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["ConfigError", "InputError", "StoreError", "StoreKeyError"]


class InputError(ValueError):
    """Bad user input: a file, an option or a value that sinotriage cannot use.

    Subclasses :class:`ValueError`, so code that caught ``ValueError`` keeps working.
    The message names the file or option and the problem.
    """


class ConfigError(InputError):
    """A study or training configuration that does not validate."""


class StoreError(InputError):
    """A data store that is missing, of another format version, or not a sinotriage store."""


class StoreKeyError(StoreError, KeyError):
    """A study, array or derived group that a store does not hold.

    Also a :class:`KeyError`, so ``except KeyError`` around store look-ups keeps working.
    """

    __str__ = BaseException.__str__  # the message, without the quotes KeyError adds
