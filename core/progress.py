"""How far long work has got, told to whoever shows it.

Services that take a while accept `progress: Progress`, a callable they call with what they are doing now
and, when it can be counted, how much of it is done: `progress("importing properties", 20_000, 50_000)`.
Each call is the whole state (a new `doing` starts a new stage; `done` and `total` None: not counted).
Services never print; a command shows the calls (`Steps`: a bar on a terminal, a line per milestone in a
log), and a caller that shows nothing passes nothing (`no_progress`).
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as RichProgress


class Progress(Protocol):
    def __call__(self, doing: str, done: float | None = None, total: float | None = None) -> None: ...


def no_progress(doing: str, done: float | None = None, total: float | None = None) -> None:
    """A Progress that shows nothing."""


# Without a terminal, a counted stage writes a line each time it passes one of these shares.
MILESTONES = (0.25, 0.5, 0.75, 1.0)


class StepFailed(Exception):
    """A step of `Steps` raised: `step` names it ("3/8 seed_demo"), `error` is what it raised."""

    def __init__(self, step: str, error: BaseException, seconds: float):
        self.step, self.error, self.seconds = step, error, seconds
        super().__init__(f"step {step} failed after {seconds:.1f} s: {_reason(error)}")


def _reason(error: BaseException) -> str:
    if isinstance(error, SystemExit):
        return f"exit code {error.code}"
    return str(error) or type(error).__name__


class Steps:
    """Numbered steps run one after the other, each announced with its number and name, then its time (or
    its failure). While a step runs, its progress is a bar redrawn in place on a terminal (rich), or
    elsewhere (CI, a log file) a plain line each time the step starts something new and each time a
    counted stage passes a quarter of its total. What the step writes goes through `output()`, printed
    above the bar."""

    def __init__(self, *, count: int, stream: IO[str], terminal: bool | None = None):
        self.count = count
        self.stream = stream
        self.terminal = stream.isatty() if terminal is None else terminal
        self.console = Console(file=stream, force_terminal=self.terminal, highlight=False, soft_wrap=True)
        self.number = 0
        self._bar: RichProgress | None = None

    def output(self) -> io.TextIOBase:
        """A writable stream for a step's own messages: each line shown above the bar (or as it is)."""
        return _Lines(self._line)

    def _line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    @contextmanager
    def step(self, name: str) -> Iterator[Progress]:
        """Run one step: yields its Progress. StepFailed (from what the step raised, SystemExit included)
        when it fails, after saying so."""
        self.number += 1
        label = f"{self.number}/{self.count} {name}"
        heading = f"[{self.number}/{self.count}] {name}"
        self._line(heading)
        started = time.monotonic()
        show = self._bar_progress(name) if self.terminal else _Milestones(name, self._line)
        try:
            yield show
        except (Exception, SystemExit) as error:
            seconds = time.monotonic() - started
            self._bar_stop()
            self._line(f"{heading}: failed after {seconds:.1f} s: {_reason(error)}")
            raise StepFailed(label, error, seconds) from error
        finally:
            self._bar_stop()
        seconds = time.monotonic() - started
        self._line(f"{heading}: done in {seconds:.1f} s")

    def _bar_progress(self, name: str) -> Progress:
        bar = RichProgress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        task = bar.add_task(name, total=None)
        bar.start()
        self._bar = bar

        def show(doing: str, done: float | None = None, total: float | None = None) -> None:
            bar.update(task, description=f"{name}: {doing}", completed=done or 0, total=total)

        return show

    def _bar_stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class _Milestones:
    """Progress as plain lines: one when the step starts something new, one at each milestone of a count
    (a count goes on across stages with the same total: days played)."""

    def __init__(self, name: str, say: _Say):
        self.name = name
        self.say = say
        self.doing: str | None = None
        self.count: tuple[float, float] = (0, 0)  # done and total of the last counted call
        self.passed = 0  # milestones of the current count already written

    def __call__(self, doing: str, done: float | None = None, total: float | None = None) -> None:
        if doing != self.doing:
            self.doing = doing
            self.say(f"  {self.name}: {doing}")
        if done is None or not total:
            return
        if total != self.count[1] or done < self.count[0]:  # a new count (the next file), not the same one on
            self.passed = 0
        self.count = (done, total)
        share = done / total
        reached = sum(1 for milestone in MILESTONES if share >= milestone)
        if reached > self.passed:
            self.passed = reached
            self.say(f"  {self.name}: {doing}: {done:,.0f} of {total:,.0f} ({MILESTONES[reached - 1]:.0%})")


class _Say(Protocol):
    def __call__(self, text: str) -> None: ...


class _Lines(io.TextIOBase):
    """A text stream that hands each complete line to `line` (a partial one when flushed at close)."""

    def __init__(self, line: _Say):
        self._line_out = line
        self._pending = ""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._line_out(line)
        return len(text)

    def flush(self) -> None:
        """A partial line waits for its end (or close)."""

    def close(self) -> None:
        if self._pending:
            self._line_out(self._pending)
            self._pending = ""
        super().close()
