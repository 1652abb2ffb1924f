"""Write a Result's one-line summary to the Kubernetes termination log.

Kubernetes creates ``/dev/termination-log`` in each container (``terminationMessagePath``) and shows
what the process wrote there as the container's termination message (``kubectl get pod -o yaml``,
``kubectl describe``), at most 4096 bytes. Rendering only: the line is ``ssdns.report.summary_line``.

The file is only written when it already exists (it is opened without O_CREAT), so running outside
Kubernetes creates nothing. Nothing here ever raises: a missing or read-only file returns False.
"""

from __future__ import annotations

import os

from ssdns.model import Result

DEFAULT_PATH = "/dev/termination-log"
MAX_BYTES = 4096  # Kubernetes' limit per container


def termination_message(result: Result) -> bytes:
    """The bytes to write: one line (newline-terminated), UTF-8, at most MAX_BYTES in all."""
    from ssdns.report import summary_line

    return _one_line(summary_line(result))


def _one_line(text: str) -> bytes:
    line = " ".join(text.split())  # one line, whatever the messages held
    data = line.encode("utf-8", "replace")[:MAX_BYTES - 1]
    data = data.decode("utf-8", "ignore").encode("utf-8")  # never cut a character in half
    return data + b"\n"


def write_termination_log(result: Result, path: str | os.PathLike = DEFAULT_PATH) -> bool:
    """Write the summary into path when it exists; True when written, False when skipped. Never raises."""
    try:
        from ssdns.report import summary_line

        return write_line(summary_line(result), path)
    except Exception:  # noqa: BLE001 - an odd Result: skip silently
        return False


def write_line(text: str, path: str | os.PathLike = DEFAULT_PATH) -> bool:
    """Write one line (made one, cut to MAX_BYTES) into path when it exists. Never raises."""
    try:
        data = _one_line(text)
        # O_NONBLOCK: a FIFO nobody reads fails at once (ENXIO) instead of blocking the exit for ever; a
        # line of at most MAX_BYTES fits a pipe's buffer whole.
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except Exception:  # noqa: BLE001 - missing, read-only, a directory, or an odd Result: skip silently
        return False
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        return True
    except Exception:  # noqa: BLE001
        return False
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
