"""The cyclic garbage collector's pace: slow while ssdns starts, as usual once a run is under way.

Start-up creates ~40,000 objects (modules, classes, functions), nearly none of them garbage. At Python's
usual pace (a first-generation collection per 700 new objects) ~55 collections scanned them: 9-11 ms of a
small check on a loaded machine. So start-up runs at 50,000. But a run's own objects (a 5,000-pod check's
tasks and answers) do make cycles: at 50,000 for the whole run, the check's peak RSS at 5,000 pods was
58.7 -> 69.8 MiB. When a run starts, start-up's objects are frozen (never scanned again) and the pace is
Python's own.
"""

from __future__ import annotations

import gc

DEFAULT = gc.get_threshold()  # Python's own, read before start_up() changes it
START_UP = 50_000


_starting: list[bool] = []  # start_up() was called and running() not yet: the executable is starting


def start_up() -> None:
    """The executable starts (cli.run); not a program that imports ssdns."""
    _starting.append(True)
    gc.set_threshold(START_UP, *DEFAULT[1:])


def running() -> None:
    """A run starts: what start-up made is kept out of every later collection, and the pace is the usual.
    Once per process, and only in the executable: a freeze in a long-lived process that runs many checks
    (the tests) would keep each run's garbage cycles for ever."""
    if _starting:
        _starting.clear()
        gc.freeze()
        gc.set_threshold(*DEFAULT)
