"""Exceptions the CLI turns into exit codes: bad input -> 2 (one clear line), anything else -> 1."""


class InputError(ValueError):
    """A user-supplied file, table, folder or option is unusable; the message is one sentence naming it."""
