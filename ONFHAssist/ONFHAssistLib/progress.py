"""Progress reporting: JSON lines for machines (the Slicer panels), a progress bar for people.

Protocol (DESIGN §4): with `--progress jsonl`, stdout carries one JSON object per line,
`{"event": "progress"|"log"|"metric"|"result"|"error", "stage": str, "fraction": 0..1, ...}`; a job counted
in units (`Steps`: scans of a batch, epochs, folds × models of a CV) adds `units_done`, `units` and, once a
unit has finished, `eta_s` to its progress events.
For people (`BarReporter`) a step that runs long still shows: the bar is redrawn, or outside a terminal a
line is written, at least once a second with the time elapsed and the estimated time left.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO

from .atomic import json_safe

EVENTS = ("progress", "log", "metric", "result", "error")
TICK_S = 1.0  # while a step runs, the bar is redrawn (or a line written) at least this often


class Reporter:
    """Base reporter: silent. Subclasses decide how events are shown."""

    def emit(self, event: str, stage: str, **fields) -> None:
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


class Steps:
    """A long job as `total` units (the caller's label says which, e.g. "scan 2/5: name" or "fold 2/5, model
    3/8"), reported as progress of `stage` with the units done and an ETA: the mean wall time of the finished
    units that did work × the units left ÷ the units that run at once. A unit read back from disk (`cached`)
    counts as done but not towards the mean. `reporter` None counts silently (a non-reporting rank)."""

    def __init__(self, reporter: Reporter | None, stage: str, total: int, done: int = 0, parallel: int = 1,
                 clock: Callable[[], float] = time.monotonic):
        self.reporter, self.stage, self.total, self.done_units = reporter, stage, max(int(total), 1), int(done)
        self.parallel, self.clock = max(int(parallel), 1), clock
        self.durations: list[float] = []
        self._running: dict[object, tuple[float, str]] = {}

    def eta_s(self) -> float | None:
        """Seconds left, or None before a unit that did work has finished."""
        if not self.durations:
            return None
        return sum(self.durations) / len(self.durations) * max(self.total - self.done_units, 0) / self.parallel

    def start(self, label: str, key: object = None, **fields) -> None:
        """A unit begins (`key` tells units apart when several run at once)."""
        self._running[key] = (self.clock(), label)
        self._emit(label, **fields)

    def done(self, key: object = None, cached: bool = False, label: str | None = None, **fields) -> None:
        """The unit begun under `key` has finished; `fields` ride on its progress event (e.g. epoch_s)."""
        began, started_label = self._running.pop(key, (None, ""))
        if began is not None and not cached:
            self.durations.append(self.clock() - began)
        self.done_units = min(self.done_units + 1, self.total)
        self._emit(label or started_label, **fields)

    @contextmanager
    def step(self, label: str, cached: bool = False):
        """`with steps.step("scan 2/5: name"):` around one unit's work."""
        self.start(label)
        yield
        self.done(cached=cached)

    def _emit(self, label: str, **fields) -> None:
        if self.reporter is None:
            return
        eta = self.eta_s()
        timing = {"eta_s": round(eta, 1)} if eta is not None else {}
        self.reporter.progress(self.stage, self.done_units / self.total, message=label, units_done=self.done_units,
                               units=self.total, **timing, **fields)


class JsonLinesReporter(Reporter):
    """One JSON object per line, flushed at once so a reader thread sees it immediately."""

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream or sys.stdout

    def emit(self, event: str, stage: str, **fields) -> None:
        line = json.dumps(json_safe({"event": event, "stage": stage, **fields}), separators=(",", ":"))
        self.stream.write(line + "\n")
        self.stream.flush()


_open_bar: IO[str] | None = None  # a terminal whose last line is a bar still waiting for its newline
_beating: set[BarReporter] = set()  # reporters whose heartbeat thread runs


def _erase_bar() -> None:
    global _open_bar
    if _open_bar is not None:
        _open_bar.write("\r\033[K")
        _open_bar.flush()
        _open_bar = None


def clear_bar() -> None:
    """Stop every heartbeat and erase a half-drawn bar, so an error message that follows is a line of its own,
    and the last one."""
    for reporter in list(_beating):
        reporter.stop()
    _erase_bar()


def clock_text(seconds: float) -> str:
    """m:ss, or h:mm:ss from an hour on."""
    minutes, secs = divmod(round(max(seconds, 0.0)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class _Stage:
    opened: float  # when the stage began (its first event, or a restart at a lower fraction)
    at: float  # when its last event came
    fraction: float
    message: str
    fields: dict = field(default_factory=dict)

    def eta(self, now: float) -> float | None:
        eta = self.fields.get("eta_s")
        return None if eta is None else max(float(eta) - (now - self.at), 0.0)

    def text(self, now: float) -> str:
        """'40% epoch 16/40 (0:14 elapsed, about 1:02 left)'."""
        eta = self.eta(now)
        return (f"{self.fraction:.0%} {self.message}".rstrip() + f" ({clock_text(now - self.opened)} elapsed"
                + ("" if eta is None else f", about {clock_text(eta)} left") + ")")

    def summary(self, name: str, now: float) -> str:
        """'cv survival: fold 2/5, model 3/8: CoxPH (grades), about 12:00 left': an outer job's unit and time
        left, beside the step that runs inside it."""
        eta = self.eta(now)
        return f"{name}: {self.message}" + ("" if eta is None else f", about {clock_text(eta)} left")


class BarReporter(Reporter):
    """A one-line progress bar on stderr for terminals; plain lines when stderr is not a terminal. Either way a
    heartbeat thread shows the running step at least every `tick_s` (elapsed time, ETA, and the outer job's
    units when the step runs inside one), so a long step is never silent. Outside a terminal the first line
    comes `tick_s` after the first event, so a run that fails at once prints its error line alone."""

    def __init__(self, stream: IO[str] | None = None, width: int = 30, clock: Callable[[], float] = time.monotonic,
                 tick_s: float = TICK_S, heartbeat: bool = True):
        self.stream = stream or sys.stderr
        self.width, self.tty = width, self.stream.isatty()
        self.clock, self.tick_s, self.heartbeat = clock, tick_s, heartbeat
        self._stages: dict[str, _Stage] = {}  # open stages, oldest first
        self._current: str | None = None
        self._first: float | None = None  # when the first progress event came
        self._last_shown = -float("inf")
        self._lock = threading.RLock()
        self._stopped: threading.Event | None = None  # the running heartbeat's stop flag

    def emit(self, event: str, stage: str, **fields) -> None:
        with self._lock:
            if event == "progress":
                self._progress(stage, fields)
                return
            if event in ("result", "error"):
                self._stop_locked()
            _erase_bar()
            message = fields.get("message", "")
            if event in ("log", "error"):
                self.stream.write(f"{'error: ' if event == 'error' else ''}{message}\n")
            elif event == "metric":
                shown = ", ".join(f"{k}={v}" for k, v in fields.items())
                self.stream.write(f"{stage}: {shown}\n")
            self.stream.flush()

    def line(self, now: float | None = None) -> str:
        """The running step as a line: the outer job's units and ETA, stage, percent, message, elapsed, time left."""
        now = self.clock() if now is None else now
        with self._lock:
            if self._current not in self._stages:
                return ""
            outer = self._outer(now)
            return f"{outer} | " * bool(outer) + f"{self._current}: {self._stages[self._current].text(now)}"

    def tick(self) -> float | None:
        """One heartbeat: show the running step when nothing was shown for `tick_s`. Returns the seconds to the
        next beat, or None when no step is open (the thread ends; the next progress event starts another)."""
        with self._lock:
            if not self._stages:
                self._stop_locked()
                return None
            now = self.clock()
            if self._due(now):
                self._show(now)
            first = now if self._first is None else self._first
            return max(max(self._last_shown, first) + self.tick_s - now, 0.05)

    def stop(self) -> None:
        """End the heartbeat and forget the open steps (the command finished or failed)."""
        with self._lock:
            self._stop_locked()

    def _outer(self, now: float) -> str:
        """The oldest other open stage counted in units (a batch, a CV) around the running step, if any."""
        return next((s.summary(name, now) for name, s in self._stages.items()
                     if name != self._current and "units" in s.fields), "")

    def _due(self, now: float) -> bool:
        waited = self._first is not None and now - self._first >= self.tick_s
        return now - self._last_shown >= self.tick_s and (self.tty or waited)

    def _stop_locked(self) -> None:
        self._stages.clear()
        self._current = None
        if self._stopped is not None:
            self._stopped.set()
            self._stopped = None
        _beating.discard(self)

    def _progress(self, name: str, fields: dict) -> None:
        now = self.clock()
        fraction, message = fields.pop("fraction"), str(fields.pop("message", ""))
        stage = self._stages.get(name)
        if stage is None or fraction < stage.fraction:  # a new stage, or the same one run again (the next scan)
            stage = self._stages[name] = _Stage(now, now, fraction, message)
        stage.at, stage.fraction, stage.message, stage.fields = now, fraction, message, fields
        self._current = name
        self._first = now if self._first is None else self._first
        if fraction >= 1.0 or self.tty or self._due(now):
            self._show(now)
        if fraction >= 1.0:
            del self._stages[name]
            self._current = next(reversed(self._stages), None)
            if self._current is None:  # nothing runs: no heartbeat until the next step
                self._stop_locked()
        elif self.heartbeat and self._stopped is None:
            self._start_heartbeat()

    def _show(self, now: float) -> None:
        global _open_bar
        stage = self._stages[self._current]
        try:
            if self.tty:
                done = round(stage.fraction * self.width)
                outer = self._outer(now)
                text = stage.text(now) + f" | {outer}" * bool(outer)
                self.stream.write(f"\r{self._current[:12]:12s} [{'#' * done}{'.' * (self.width - done)}] "
                                  f"{text[:80]:80s}")
                _open_bar = self.stream
                if stage.fraction >= 1.0:
                    self.stream.write("\n")
                    _open_bar = None
            else:
                self.stream.write(self.line(now) + "\n")
            self.stream.flush()
        except (ValueError, OSError):  # the stream was closed under the heartbeat (a pipe, a test's capture)
            self._stop_locked()
            return
        self._last_shown = now

    def _start_heartbeat(self) -> None:
        stopped = self._stopped = threading.Event()
        _beating.add(self)

        def beat() -> None:
            delay: float | None = self.tick_s
            while delay is not None and not stopped.wait(delay):
                with self._lock:
                    delay = None if stopped.is_set() else self.tick()

        threading.Thread(target=beat, name="onfh-progress", daemon=True).start()


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
