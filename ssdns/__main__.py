"""The executable: `python -m ssdns`, and the `ssdns` console script (pyproject.toml: ssdns.__main__:run).

cli.main turns a signal into one line and its exit code, but only once cli and its imports are loaded (the
first ~50 ms of a run), and only while its `try` runs. Ctrl-C before that, after it, or while main's error
handler writes a failed run's outputs was Python's traceback; SIGTERM killed the process without a word.
This module loads nothing but the package's two-line __init__ (and signal, which cli loads anyway) before
its `try`: what is left is the interpreter's own start-up.
"""

import signal
import sys


class _Terminated(KeyboardInterrupt):
    """SIGTERM outside cli.main's handlers: the run stops as on Ctrl-C, and says which signal."""


def _terminate(signum, frame):
    raise _Terminated


def run() -> None:
    signal.signal(signal.SIGTERM, _terminate)  # cli.main sets its own, and puts this one back after
    try:
        from ssdns.cli import run as cli_run

        cli_run()
    except KeyboardInterrupt as exc:
        _interrupted(signal.SIGTERM if isinstance(exc, _Terminated) else signal.SIGINT)
    except BaseException as exc:
        errors = sys.modules.get("ssdns.errors")  # cli's handler raises its Interrupted: loaded if raised
        if errors is None or not isinstance(exc, errors.Interrupted):
            raise
        _interrupted(exc.signum)


def _interrupted(signum: int) -> None:
    import os

    for sig in (signal.SIGINT, signal.SIGTERM):  # a second signal ends the process at once, as in cli.main
        signal.signal(sig, signal.SIG_DFL)
    from ssdns.errors import Interrupted

    stop = Interrupted(signum)
    try:  # os.write: sys.stderr may be None (a closed descriptor, before streams.make_safe) or half made
        os.write(2, f"ssdns: {stop}\n".encode())
    except OSError:
        pass
    sys.exit(stop.exit_code)


if __name__ == "__main__":
    run()
