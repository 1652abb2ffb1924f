"""Exit codes and the errors that map to them.

0 every check passed, 1 a check failed, 2 bad usage or input, 3 could not run
(no nameserver answered, the deadline passed before anything was learned),
4 the Kubernetes API was required (--api on) but could not be used.
"""

OK = 0
FAILED = 1
USAGE = 2
CANNOT_RUN = 3
API_UNAVAILABLE = 4


class SsdnsError(Exception):
    """An error the user can act on: printed as one line, never a traceback."""

    exit_code = CANNOT_RUN


class UsageError(SsdnsError):
    exit_code = USAGE


class CannotRun(SsdnsError):
    exit_code = CANNOT_RUN


class ApiUnavailable(SsdnsError):
    exit_code = API_UNAVAILABLE
