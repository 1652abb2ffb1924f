"""The help formatter of ssdns's command line: argparse's RawDescriptionHelpFormatter, as wide as argparse makes
it, without shutil.

Why: argparse makes a formatter for every option it adds (to check the option's metavar), and its formatter
asks shutil.get_terminal_size for the width: importing shutil (with bz2, lzma, fnmatch) was ~3 ms of every
run's start-up, for a width only --help and a usage error show. The width is found as shutil finds it:
COLUMNS when set, else the terminal of stdout, else 80.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def columns() -> int:
    """shutil.get_terminal_size().columns, without shutil."""
    try:
        width = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        width = 0
    if width <= 0:
        try:
            width = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            width = 0
    return width if width > 0 else 80


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str, *args: Any, **kwargs: Any) -> None:
        if len(args) < 3 and kwargs.get("width") is None:  # argparse's own: the terminal's width, less 2
            kwargs["width"] = columns() - 2
        super().__init__(prog, *args, **kwargs)
