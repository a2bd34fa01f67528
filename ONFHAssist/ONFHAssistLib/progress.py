"""Progress reporting: JSON lines for machines (the Slicer panels), a progress bar for people.

Protocol (DESIGN §4): with `--progress jsonl`, stdout carries one JSON object per line,
`{"event": "progress"|"log"|"metric"|"result"|"error", "stage": str, "fraction": 0..1, ...}`.
"""
from __future__ import annotations

import json
import sys
import time
from typing import IO

from .atomic import json_safe

EVENTS = ("progress", "log", "metric", "result", "error")


class Reporter:
    """Base reporter: silent. Subclasses decide how events are shown."""

    def emit(self, event: str, stage: str, **fields) -> None:  # noqa: D102 - overridden
        pass

    def progress(self, stage: str, fraction: float, **fields) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"progress fraction {fraction} is outside 0..1")
        self.emit("progress", stage, fraction=round(float(fraction), 4), **fields)

    def log(self, stage: str, message: str, **fields) -> None:
        self.emit("log", stage, message=message, **fields)

    def metric(self, stage: str, **values) -> None:
        self.emit("metric", stage, **values)

    def result(self, stage: str, **fields) -> None:
        self.emit("result", stage, **fields)

    def error(self, stage: str, message: str, **fields) -> None:
        self.emit("error", stage, message=message, **fields)


class JsonLinesReporter(Reporter):
    """One JSON object per line, flushed at once so a reader thread sees it immediately."""

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream or sys.stdout

    def emit(self, event: str, stage: str, **fields) -> None:
        line = json.dumps(json_safe({"event": event, "stage": stage, **fields}), separators=(",", ":"))
        self.stream.write(line + "\n")
        self.stream.flush()


_open_bar: IO[str] | None = None  # a terminal whose last line is a bar still waiting for its newline


def clear_bar() -> None:
    """Erase a half-drawn bar so an error message that follows is a line of its own, and the last one."""
    global _open_bar
    if _open_bar is not None:
        _open_bar.write("\r\033[K")
        _open_bar.flush()
        _open_bar = None


class BarReporter(Reporter):
    """A one-line progress bar on stderr for terminals; plain lines when stderr is not a terminal, the first
    after 5 s, so a run that fails at once prints its error line alone."""

    def __init__(self, stream: IO[str] | None = None, width: int = 30):
        self.stream = stream or sys.stderr
        self.width, self.tty = width, self.stream.isatty()
        self._last = time.monotonic()

    def _bar(self, stage: str, fraction: float, message: str) -> None:
        global _open_bar
        done = int(round(fraction * self.width))
        self.stream.write(f"\r{stage:12s} [{'#' * done}{'.' * (self.width - done)}] {fraction:4.0%} {message[:40]:40s}")
        _open_bar = self.stream
        if fraction >= 1.0:
            self.stream.write("\n")
            _open_bar = None

    def emit(self, event: str, stage: str, **fields) -> None:
        message = fields.get("message", "")
        if event == "progress":
            fraction = fields["fraction"]
            if self.tty:
                self._bar(stage, fraction, message)
            elif fraction >= 1.0 or time.monotonic() - self._last > 5.0:
                self.stream.write(f"{stage}: {fraction:.0%} {message}\n")
                self._last = time.monotonic()
            self.stream.flush()
            return
        clear_bar()
        if event in ("log", "error"):
            self.stream.write(f"{'error: ' if event == 'error' else ''}{message}\n")
        elif event == "metric":
            shown = ", ".join(f"{k}={v}" for k, v in fields.items())
            self.stream.write(f"{stage}: {shown}\n")
        self.stream.flush()


def make_reporter(mode: str = "bar") -> Reporter:
    """'jsonl' for the panels, 'bar' for people, 'none' for silence."""
    if mode == "jsonl":
        return JsonLinesReporter()
    if mode == "bar":
        return BarReporter()
    if mode == "none":
        return Reporter()
    raise ValueError(f"unknown progress mode {mode!r}")


def parse_line(line: str) -> dict | None:
    """An event from one stdout line; non-JSON text becomes a log event, blank lines None."""
    text = line.strip()
    if not text:
        return None
    try:
        event = json.loads(text)
    except json.JSONDecodeError:
        return {"event": "log", "stage": "", "message": text}
    if not isinstance(event, dict) or event.get("event") not in EVENTS:
        return {"event": "log", "stage": "", "message": text}
    return event
