"""Errors a user can cause or fix. The CLI prints these as one line; anything else is a bug and
gets its traceback.

Each stage raises a subclass naming what went wrong and what to do; none of them is retried by
a task, except :class:`TransientError`, which may pass on its own (a server restarting, a
throttled exchange).
"""

from __future__ import annotations


class SentinanceError(Exception):
    """A mistake, a missing input or a failed check the user can act on."""


class SettingsError(SentinanceError, ValueError):
    """A setting (environment variable, TOML key) or command-line value is invalid."""


class MissingInputError(SentinanceError):
    """A stage's input does not exist yet: the message says which command makes it."""


class ResourceNotFoundError(SentinanceError):
    """A project file the package needs (the dbt project, the Feast repo) is not where expected."""


class TransientError(SentinanceError):
    """A failure that may pass on its own; the tasks that meet it retry."""
