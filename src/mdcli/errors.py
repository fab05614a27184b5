"""Exceptions that map onto mdcli's exit codes.

``InputError`` (exit 2) is bad usage or bad input: the message is one line that names the
file, key or option and says what was expected. ``RunFailure`` (exit 1) is a failure while
running. An interrupt (Ctrl-C, SIGTERM) is a ``KeyboardInterrupt`` (exit 130).
"""

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_BELOW_BAR = 3
EXIT_INTERRUPTED = 130


class InputError(Exception):
    """Bad usage or bad input; exit code 2."""


class RunFailure(Exception):
    """A failure while running; exit code 1."""
