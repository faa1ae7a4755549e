"""Errors caused by the user's input rather than by a bug in nafft.

The CLI prints these as one line (`nafft: error: ...`) and exits non-zero, without a traceback.
Every message names the file or key at fault and what is wrong with it.
"""


class UserError(Exception):
    """Bad input: a file, a path, an argument or a config value."""


class ConfigError(UserError, ValueError):
    """A configuration key or value that cannot be used."""


class CheckpointError(UserError):
    """A checkpoint file that cannot be read or does not fit the model."""
