"""The executable: `python -m ssdns`, and the `ssdns` console script (pyproject.toml: ssdns.__main__:run).

cli.main turns a signal into one line and its exit code, but only once cli and its imports are loaded (the
first ~50 ms of a run), and only while its `try` runs. Ctrl-C before that, after it, or while main's error
handler writes a failed run's outputs was Python's traceback; SIGTERM killed the process without a word.
This module loads nothing but the package's two-line __init__ (and signal, which cli loads anyway) before
its `try`: what is left is the interpreter's own start-up.

A signal's exception raised where Python ignores exceptions (a weakref callback such as the import
system's module-lock cleanup, a __del__, a gc callback) was printed as "Exception ignored in ..." and the
run went on as if nobody had pressed Ctrl-C (CI saw exit 1 after the checks failed). _unraisable takes
it back and sends the signal again, from a thread, so it lands once the callback has returned.
"""

import _thread
import signal
import sys

REDELIVER_MAX = 50  # re-sendings of one swallowed signal before the process ends at once (never a hang)
_redelivered = 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM outside cli.main's handlers: the run stops as on Ctrl-C, and says which signal."""


def _terminate(signum, frame):
    raise _Terminated


def _signal_of(exc: BaseException | None) -> int | None:
    """The signal a swallowed exception stands for, or None when it is no signal's."""
    if isinstance(exc, KeyboardInterrupt):
        return signal.SIGTERM if isinstance(exc, _Terminated) else signal.SIGINT
    errors = sys.modules.get("ssdns.errors")
    if errors is not None and isinstance(exc, errors.Interrupted):
        return exc.signum
    return None


def _unraisable(unraisable) -> None:
    """sys.unraisablehook: a signal's exception that Python would print and drop is sent again instead,
    while a Python handler is there to take it (a handler set back to SIG_DFL means the run is already
    stopping: the second signal is not made up). Anything else goes to Python's own hook."""
    global _redelivered
    signum = _signal_of(unraisable.exc_value)
    if signum is None:
        sys.__unraisablehook__(unraisable)
        return
    if not callable(signal.getsignal(signum)):
        return
    _redelivered += 1
    if _redelivered > REDELIVER_MAX:  # sys.exit would be swallowed here too
        import os

        os._exit(_say(signum))
    main = _thread.get_ident()  # handlers run in the main thread only: this is it
    try:
        _thread.start_new_thread(signal.pthread_kill, (main, signum))  # lands after this hook and its callback
    except RuntimeError:  # no new thread (the interpreter is finalizing): the run ends here, as it would have
        import os

        os._exit(_say(signum))


def run() -> None:
    signal.signal(signal.SIGTERM, _terminate)  # cli.main sets its own, and puts this one back after
    sys.unraisablehook = _unraisable
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
    for sig in (signal.SIGINT, signal.SIGTERM):  # a second signal ends the process at once, as in cli.main
        signal.signal(sig, signal.SIG_DFL)
    sys.exit(_say(signum))


def _say(signum: int) -> int:
    """The signal's one line on stderr; its exit code."""
    import os

    from ssdns.errors import Interrupted

    stop = Interrupted(signum)
    try:  # os.write: sys.stderr may be None (a closed descriptor, before streams.make_safe) or half made
        os.write(2, f"ssdns: {stop}\n".encode())
    except OSError:
        pass
    return stop.exit_code


if __name__ == "__main__":
    run()
