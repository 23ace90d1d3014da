"""Errors that end a command with a one-line message instead of a traceback."""


class UsageError(ValueError):
    """Bad input from the user: printed as one line, exit status 2, before any rank starts."""
