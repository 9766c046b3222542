"""Errors that reach the user as one line, without a Python traceback."""


class HarnessError(Exception):
    """A mistake the user can fix: the message says what is wrong and what to do."""


class SuiteError(HarnessError):
    """A suite file that cannot be used; the message names the file and the key."""


class CaseSkipped(Exception):
    """A case that cannot run in this configuration; the message is the reason shown by pytest."""
