"""esptool used as a library: its logger reduced to one progress line per region, and silenced
around calls whose chatter is not ours to print (esptool v5's TemplateLogger contract).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Progress", "quiet_esptool"]


class Progress:
    """esptool's logger, reduced to one progress line per region (TemplateLogger contract)."""

    def __init__(self) -> None:
        import sys

        from esptool.logger import TemplateLogger

        outer = self

        class Logger(TemplateLogger):  # type: ignore[misc]
            def print(self, *args: Any, **kwargs: Any) -> None:
                pass

            def note(self, message: str) -> None:
                pass

            def warning(self, message: str) -> None:
                print(f"warning: {message}", file=sys.stderr)

            def error(self, message: str) -> None:
                print(f"error: {message}", file=sys.stderr)

            def stage(self, finish: bool = False) -> None:
                pass

            def progress_bar(
                self,
                cur_iter: int,
                total_iters: int,
                prefix: str = "",
                suffix: str = "",
                bar_length: int = 30,
            ) -> None:
                outer.show(cur_iter, total_iters)

            def set_verbosity(self, verbosity: str) -> None:
                pass

        self.logger = Logger()
        self.label = ""
        self.tty = sys.stdout.isatty()
        self.last = -1

    def show(self, done: int, total: int) -> None:
        percent = 100 * done // max(total, 1)
        if self.tty:
            bar = "━" * (percent * 30 // 100)
            print(f"\r  {self.label:<16} {bar:<30} {percent:3d}%", end="", flush=True)
        elif percent // 25 != self.last // 25:
            print(f"  {self.label:<16} {percent:3d}%", flush=True)
        self.last = percent

    def end(self) -> None:
        if self.tty and self.last >= 0:
            print()
        self.last = -1


@contextmanager
def quiet_esptool(progress: Progress) -> Iterator[None]:
    from esp_pylib.logger import EspLog
    from esptool.logger import log

    previous = EspLog.instance
    log.set_logger(progress.logger)
    try:
        yield
    finally:
        EspLog.instance = previous
