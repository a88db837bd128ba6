"""doit 0.37 reads its command line with `arg[0]` before it loads dodo.py (doit_cmd.py
process_args, loader.py load_tasks), so an empty value (`doit boot --slot ''`) ends in IndexError
before any project code runs. esp_ota_doit.pth calls `guard()` at interpreter start: for a doit
command line only, `--slot ''` becomes the same `--slot=`, so the option checks give their one
line (exit 3). Nothing is imported; any other program's argv is left alone.
"""

from __future__ import annotations

import itertools
import os
import sys

__all__ = ["guard", "rewritten"]

# The short options of this project's tasks, as their long forms (graph.py / wiring.py).
_SHORT = {"-p": "--port", "-b": "--baud"}


def rewritten(args: list[str]) -> list[str]:
    """doit's arguments with no empty string left: `--opt ''` -> `--opt=`, `-p ''` -> `--port=`,
    and any other empty argument shown as '' (doit then names it as an unknown task)."""
    out: list[str] = []
    for arg in args:
        if arg:
            out.append(arg)
            continue
        before = out[-1] if out else ""
        if before.startswith("--") and "=" not in before and len(before) > 2:
            out[-1] = before + "="
        elif before in _SHORT:
            out[-1] = _SHORT[before] + "="
        else:
            out.append("''")
    return out


def _is_doit(argv: list[str]) -> bool:
    """`doit ...` (the console script), or `python -m doit ...` (argv[0] is '-m' until runpy
    starts the module)."""
    if argv[0] == "-m":
        orig = getattr(sys, "orig_argv", [])
        return any(a == "-m" and b == "doit" for a, b in itertools.pairwise(orig))
    return os.path.basename(argv[0]) in ("doit", "doit.exe")


def guard() -> None:
    """Rewrite this process's argv when it is a doit command line holding an empty argument."""
    argv = getattr(sys, "argv", None)
    if argv and "" in argv[1:] and _is_doit(argv):
        argv[1:] = rewritten(argv[1:])
