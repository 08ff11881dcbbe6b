"""Errors the operator can fix themselves: shown as one sentence, exit code 2."""


class UserError(Exception):
    """A problem with the input or the machine, not a bug: no traceback is shown."""

    exit_code = 2
