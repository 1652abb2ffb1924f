"""What a path a user gave for a file is, when it is something else.

The files ssdns writes (--state, --metrics-file, --junit) are replaced atomically: a temporary file beside
them, then a rename. Renamed over a FIFO or a device, that would put a regular file in its place (as root:
/dev/full, /dev/stdout's link target); read, a FIFO without a writer blocks for ever and a device like
/dev/zero never ends. So a path that exists and is not a regular file (after its symlinks) is refused
before the run, and a symlink's target is what gets replaced (the link stays).
"""

from __future__ import annotations

import os
import stat

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def not_a_file(path: str | os.PathLike) -> str | None:
    """What path is when it exists and is not a regular file ("a FIFO (named pipe)", ...); else None."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None  # missing or unreadable: the write says what is wrong
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")
