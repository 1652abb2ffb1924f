"""The executable: `python -m ssdns`, and the `ssdns` console script (pyproject.toml: ssdns.__main__:run).

cli.main turns a signal into one line and its exit code, but only once cli and its imports are loaded (the
first ~50 ms of a run), and only while its `try` runs. Ctrl-C before that, after it, or while main's error
handler writes a failed run's outputs was Python's traceback. This module loads nothing but the package's
two-line __init__ before its `try`: what is left is the interpreter's own start-up.
"""

import sys


def run() -> None:
    try:
        from ssdns.cli import run as cli_run

        cli_run()
    except KeyboardInterrupt:
        _interrupted(None)
    except BaseException as exc:
        errors = sys.modules.get("ssdns.errors")  # cli's handler raises its Interrupted: loaded if raised
        if errors is None or not isinstance(exc, errors.Interrupted):
            raise
        _interrupted(exc)


def _interrupted(stop) -> None:
    import os
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):  # a second signal ends the process at once, as in cli.main
        signal.signal(sig, signal.SIG_DFL)
    if stop is None:
        from ssdns.errors import Interrupted

        stop = Interrupted(signal.SIGINT)
    try:  # os.write: sys.stderr may be None (a closed descriptor, before streams.make_safe) or half made
        os.write(2, f"ssdns: {stop}\n".encode())
    except OSError:
        pass
    sys.exit(stop.exit_code)


if __name__ == "__main__":
    run()
