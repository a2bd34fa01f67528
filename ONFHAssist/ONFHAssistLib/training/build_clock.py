"""Wall time of each step of `onfh models build` (`make models`), kept in the work folder.

The build resumes where it stopped (cohorts drawn once, training from its last finished epoch), so a build can
span several runs; each run adds the seconds it spent in a step to that step's total, and the sum of the totals
is the build's wall time on that machine, less whatever the killed runs lost.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

from ..atomic import atomic_write_json
from ..errors import InputError

FILE = "build-times.json"


class BuildClock:
    def __init__(self, work: Path):
        self.path = Path(work) / FILE
        self.steps = _read_steps(self.path) if self.path.exists() else {}

    @contextmanager
    def step(self, name: str):
        """Time the block and add its seconds to `name`'s total (saved at once, so a kill loses only this block)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.steps[name] = round(self.steps.get(name, 0.0) + time.perf_counter() - start, 1)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, {"cores": os.cpu_count(), "steps": self.steps,
                                          "total_s": round(sum(self.steps.values()), 1)})

    def summary(self) -> str:
        width = max(map(len, self.steps), default=0)
        lines = [f"{name:{width}s} {seconds / 60:7.1f} min" for name, seconds in self.steps.items()]
        total = sum(self.steps.values())
        return "\n".join(lines + [f"{'total':{width}s} {total / 60:7.1f} min ({total / 3600:.2f} h on "
                                  f"{os.cpu_count()} cores; {self.path})"])


def _read_steps(path: Path) -> dict[str, float]:
    try:
        steps = json.loads(path.read_text(encoding="utf-8"))["steps"]
        return {str(name): float(seconds) for name, seconds in steps.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InputError(f"{path} is not a build-times file; move it away to start the build's times afresh.") from None
