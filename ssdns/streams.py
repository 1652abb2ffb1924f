"""The executable's standard streams, made safe before anything runs (cli.run).

- A descriptor the caller left closed (`ssdns check >&-`, `2>&-`, `<&-`, a bare cron or init) is opened on
  /dev/null. Otherwise Python has no sys.stdout to print the report to (an AttributeError traceback), prints
  what is meant for a closed stderr on stdout (print(file=None)), and the run's first socket takes
  descriptor 0, 1 or 2, which uvloop refuses to close: an assertion aborts the process (SIGABRT).
- stderr whose reader went away (`2>&1 | head -1`, a log shipper that died), or that cannot be written (a log
  file on a full disk, `2>/dev/full`: ENOSPC; EIO): writing the one error line raised in the middle of the
  error boundary, and the run exited 1 or 120 (a run that could not run, exit 3, among them). Now what cannot
  be delivered is dropped and the exit code is the run's. (stdout's reader going away is
  commands.to_stdout's: only the report is cut, the files are still written.)
"""

from __future__ import annotations

import io
import os
import sys


class _Stderr(io.RawIOBase):
    """Descriptor 2, written as ever, except that what cannot be written there is dropped instead of raising.
    Written whole and unbuffered (the text layer hands each line over and forgets it): under a buffered layer,
    a signal raised between the bytes going out and this call returning left them in its buffer, and the
    next flush said the line again."""

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        try:
            done = 0
            while done < len(view):
                done += os.write(2, view[done:])
        except OSError:  # a reader gone away, a full disk, an I/O error: nowhere else to say it
            pass
        return len(view)


def make_safe() -> None:
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:  # closed: /dev/null takes its number (the lowest free one, as 0-2 are set in order)
            null = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            if getattr(sys, name) is None:
                setattr(sys, name, open(fd, "r" if fd == 0 else "w", encoding="utf-8", closefd=False))
    err = sys.stderr
    sys.stderr = io.TextIOWrapper(_Stderr(), encoding=getattr(err, "encoding", None) or "utf-8",
                                  errors="backslashreplace", line_buffering=True)
