"""A stage's progress: one bar redrawn in place on a terminal, plain periodic lines elsewhere
(a log file, a pipe, CI), so a long stage shows it is moving without flooding a log."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

BAR_WIDTH = 30
LINE_EVERY_S = 30.0  # a plain line at most this often, and at every tenth of the total


class Progress:
    """``update(done)`` after each piece of work; ``close()`` ends the bar. A stage that may
    be short (an evaluation) passes ``quiet_for`` seconds: no line and no bar before then."""

    def __init__(
        self,
        stage: str,
        total: int,
        report: Callable[[str], None],
        unit: str = "reviews",
        quiet_for: float = 0.0,
    ) -> None:
        self.stage, self.total, self.report, self.unit = stage, max(1, total), report, unit
        self.quiet_for = quiet_for
        self.started = self.last_line = time.perf_counter()
        self.last_tenth = 0
        self.on_terminal = sys.stdout.isatty()
        self.done = 0

    def text(self) -> str:
        elapsed = time.perf_counter() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        return (
            f"{self.stage}: {100 * self.done / self.total:3.0f}% ({self.done:,} of "
            f"{self.total:,} {self.unit}, {rate:,.{0 if rate >= 10 else 2}f}/s, {left:,.0f} s left)"
        )

    def update(self, done: int) -> None:
        self.done = done
        now = time.perf_counter()
        if now - self.started < self.quiet_for:
            return
        if self.on_terminal:
            filled = BAR_WIDTH * min(done, self.total) // self.total
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            sys.stdout.write(f"\r[{bar}] {self.text()}\033[K")
            sys.stdout.flush()
            return
        tenth = 10 * done // self.total
        if tenth > self.last_tenth or now - self.last_line >= LINE_EVERY_S:
            self.report(self.text())
            self.last_tenth, self.last_line = tenth, now

    def close(self, summary: bool = True) -> None:
        """Clear the bar; with ``summary``, report the stage's total and time."""
        elapsed = time.perf_counter() - self.started
        if elapsed < self.quiet_for:
            return
        if self.on_terminal:
            sys.stdout.write("\r\033[K")
            sys.stdout.flush()
        if summary:
            self.report(f"{self.stage}: {self.done:,} {self.unit} in {elapsed:.1f} s")
