"""mer's log file: where log records and the tracebacks of internal errors go, so that
the terminal only ever shows one line per error.

The file is ``Settings.resolved_log_file`` (MER_LOG_FILE, default ``mer.log`` in the data
directory). It and its directory are created at the first record, not before: a mer that
logs nothing leaves nothing behind. A record that cannot be written is dropped and the
reason remembered; logging never fails a command. With --debug, records also go to
stderr. Imports only the standard library and mer.config.
"""

from __future__ import annotations

import logging
import sys
from io import TextIOWrapper
from pathlib import Path

from mer.config import Settings

__all__ = ["LazyFileHandler", "close_logging", "internal_error_line", "setup_logging"]

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_installed: list[logging.Handler] = []
_file: LazyFileHandler | None = None
_level_before: list[int] = []  # the root logger's level before setup_logging


class LazyFileHandler(logging.FileHandler):
    """A FileHandler that opens its file (making its directory) at the first record and
    never raises: ``failure`` says why the last record could not be written, or is None."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8", delay=True)
        self.path = path
        self.failure: str | None = None

    def _open(self) -> TextIOWrapper:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return super()._open()

    def emit(self, record: logging.LogRecord) -> None:
        self.failure = None
        try:
            super().emit(record)  # StreamHandler.emit reports its own errors to handleError
        except Exception as err:  # noqa: BLE001 - opening the file failed (see handleError)
            self._failed(err)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        self._failed(sys.exc_info()[1])

    def _failed(self, err: BaseException | None) -> None:
        self.failure = getattr(err, "strerror", None) or str(err) or type(err).__name__
        stream, self.stream = self.stream, None
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass


def setup_logging(settings: Settings) -> None:
    """Send the log to the log file (and to stderr with --debug), replacing what an
    earlier call installed."""
    global _file
    close_logging()
    root = logging.getLogger()
    level = "DEBUG" if settings.debug else settings.log_level
    _file = LazyFileHandler(settings.resolved_log_file)
    _installed.append(_file)
    if settings.debug:
        _installed.append(logging.StreamHandler(sys.stderr))
    for handler in _installed:
        handler.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(handler)
    _level_before.append(root.level)
    root.setLevel(level)


def close_logging() -> None:
    """Remove what ``setup_logging`` installed."""
    global _file
    root = logging.getLogger()
    while _installed:
        handler = _installed.pop()
        root.removeHandler(handler)
        handler.close()
    while _level_before:
        root.setLevel(_level_before.pop())
    _file = None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def internal_error_line(err: BaseException, where: str) -> str:
    """Write ``err`` and its traceback to the log file, whatever the log level (the line
    returned promises it is there), and return the one line to show the user:
    ``internal error: ValueError: boom (details in /path/mer.log)``."""
    message = _one_line(str(err))
    line = f"internal error: {type(err).__name__}" + (f": {message}" if message else "")
    if _file is None:
        return f"{line} (run with --debug for the traceback)"
    record = logging.getLogger("mer").makeRecord(
        "mer", logging.ERROR, __file__, 0, "internal error in %s", (where,),
        (type(err), err, err.__traceback__),
    )
    _file.handle(record)
    if _file.failure is not None:
        return (f"{line} (its traceback could not be written to {_file.path}: "
                f"{_one_line(_file.failure)}; run with --debug to see it)")
    return f"{line} (details in {_file.path})"
