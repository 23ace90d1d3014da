"""Errors that end a command with a one-line message instead of a traceback (exit status 2)."""


class UsageError(ValueError):
    """Bad input from the user: printed as one line, exit status 2, before any rank starts."""


class RunDirError(ValueError):
    """A path that is not a readable commbench run directory."""
