"""The one exception type users see: a bad input, reported on one line before any work starts."""


class UserError(Exception):
    """Bad input from the user (a file, a config key, a flag). The CLI prints it on one line and exits 2."""
