"""A batch's progress bar on a terminal: done of total, failed, running, rate and ETA.

Drawn by rich (imported here only, when a batch runs in a terminal: cold start does not
pay for it) from its own refresh thread; ``started``/``finished`` come from the event
loop and only update counters, under rich's lock.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, TextIO

from mer.services.batch import BatchItem, BatchOutcome

__all__ = ["BatchProgress"]


def _rate_column() -> Any:
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("- runs/s" if speed is None else f"{speed:.1f} runs/s")

    return RateColumn()


class BatchProgress:
    """``with BatchProgress(sys.stderr, total, label):`` a bar until the block ends; it
    is also the batch's events (mer/services/batch.py BatchEvents)."""

    def __init__(self, stream: TextIO, total: int, label: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.done = self.failed = self.running = 0
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed, {task.fields[running]} running"),
            _rate_column(), TimeRemainingColumn(),
            console=Console(file=stream), transient=True,
        )
        self._task = self._progress.add_task(label, total=total, failed=0, running=0)

    def __enter__(self) -> BatchProgress:
        self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()

    def started(self, item: BatchItem) -> None:
        self.running += 1
        self._progress.update(self._task, running=self.running)

    def finished(self, outcome: BatchOutcome) -> None:
        self.running -= 1
        self.done += 1
        self.failed += not outcome.ok
        self._progress.update(self._task, completed=self.done, failed=self.failed, running=self.running)

    def render(self, width: int = 120) -> str:
        """The bar as drawn now, in plain text."""
        from io import StringIO

        from rich.console import Console

        console = Console(file=StringIO(), width=width, color_system=None)
        with console.capture() as captured:
            console.print(self._progress.get_renderable())
        return captured.get()
