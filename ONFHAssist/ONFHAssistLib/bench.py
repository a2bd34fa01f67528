"""`onfh bench` / `make bench`: whole-process wall time and peak memory, medians over several runs.

Each benchmark is a command run as a fresh child process, so import time, model loading and
memory are counted as a user would feel them. Peak memory is the command's max RSS from wait4(),
which the kernel records exactly (no polling), taken through a small launcher (see `_LAUNCHER`). Micro-benchmarks that compare two implementations
(batched vs per-patch SRANet, vectorised vs per-anchor SurvRNC) are functions in
`Testing/bench/*.py` returning their own numbers; they run in a child process too.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .atomic import atomic_write_text

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
BENCH_VOLUME_SHAPE = (256, 256, 160)


@dataclass
class Bench:
    """A command to time; `prepare` makes its inputs once in `work` and returns extra argv."""

    name: str
    goal: str
    argv: Callable[[Path], list[str]]
    repeats: int = 3
    parse_stdout: bool = False
    results: list = field(default_factory=list)


# A tiny launcher between the bench and the measured command. Linux carries a process's peak RSS
# through fork and exec, so a command forked straight from this (large, torch-importing) process
# would report our peak, not its own. Forked from the launcher, it starts from the launcher's few MB.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_child(argv: list[str], cwd: Path) -> tuple[float, float, str]:
    """Run one command; return (wall seconds, its own peak RSS in MB, stdout)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, rss.name, *argv], cwd=cwd, stdout=out,
                              stderr=err, text=True)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        peak_kb = float(rss.read() or 0)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])}… failed (exit {proc.returncode}): {stderr.strip()[-400:]}")
    return wall, peak_kb / 1024.0, stdout  # Linux reports KB


def python_function(path: str, func: str) -> list[str]:
    """argv that runs a bench function from a file and prints its returned dict as JSON."""
    code = (f"import json, runpy; ns = runpy.run_path({path!r}); "
            f"print(json.dumps(ns[{func!r}]()))")
    return [sys.executable, "-c", code]


def default_benches() -> list[Bench]:
    onfh = [sys.executable, "-m", "ONFHAssistLib"]
    shape = [str(s) for s in BENCH_VOLUME_SHAPE]
    benches = [
        Bench("phantom scan 256x256x160", "—",
              lambda w: onfh + ["phantom", "--out", str(w / "ph"), "--patients", "1", "--seed", "1",
                                "--shape", *shape, "--spacing", "1.5", "1.5", "1.5", "--progress", "none"]),
    ]
    benches.append(Bench("segment both hips 256x256x160 (localise + segment + measure)", "≤ 15 s, ≤ 3 GB",
                         lambda w: onfh + ["segment", str(_bench_volume(w)), "--out", str(w / "seg"), "--no-png",
                                           "--device", "cpu"]))
    benches.append(Bench("analyze both hips 256x256x160 (every installed model, maps, report)", "≤ 20 s, ≤ 3 GB",
                         lambda w: onfh + ["analyze", str(_bench_volume(w)), "--out", str(w / "an"),
                                           "--device", "cpu", "--progress", "none"]))
    for path, func, goal in (("Testing/bench/survrnc_bench.py", "bench", "vectorised faster than loop"),
                             ("Testing/bench/sranet_bench.py", "bench", "per-hip ≤ 2 s; batched faster"),
                             ("Testing/bench/staging_bench.py", "bench", "per-hip ≤ 2 s")):
        if (REPO / path).exists():
            benches.append(Bench(Path(path).stem, goal, lambda w, p=path, f=func: python_function(str(REPO / p), f),
                                 repeats=1, parse_stdout=True))
    return benches


def _bench_volume(work: Path) -> Path:
    """A 256×256×160 phantom MR scan at 1.5 mm, made once per bench session (not timed)."""
    from .phantom import write_cohort

    cached = work.parent / "bench-volume"
    if not (cached / "hips.csv").exists():
        write_cohort(cached, 1, seed=4242, modality="mr_t1", shape=BENCH_VOLUME_SHAPE, spacing=(1.5, 1.5, 1.5))
    return next((cached / "images").iterdir())


def run(benches: list[Bench], out_dir: Path, reporter=None) -> dict:
    """Run every bench, write results.json and results.md atomically, return the results."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="onfh-bench-") as tmp:
        for i, bench in enumerate(benches):
            walls, peaks, extra = [], [], {}
            for k in range(bench.repeats):
                work = Path(tmp) / f"{i}-{k}"
                work.mkdir()
                wall, peak, out = run_child(bench.argv(work), REPO)
                walls.append(wall)
                peaks.append(peak)
                if bench.parse_stdout:
                    extra = json.loads(out.strip().splitlines()[-1])
            rows.append({"name": bench.name, "goal": bench.goal, "runs": bench.repeats,
                         "wall_s_median": round(statistics.median(walls), 3),
                         "peak_mb_median": round(statistics.median(peaks), 1), "details": extra})
            if reporter is not None:
                reporter.progress("bench", (i + 1) / len(benches), message=bench.name)
    result = {"machine": machine(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "benchmarks": rows}
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "results.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out_dir / "results.md", markdown(result))
    return result


def machine() -> dict:
    import torch

    info = {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "platform": platform.platform(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"Machine: {m['cpus']} CPUs, {m.get('gpu', 'no GPU')}, Python {m['python']}, torch {m['torch']} "
             f"({result['created']})", "",
             "| benchmark | runs | median wall (s) | median peak memory (MB) | goal | details |",
             "|---|---|---|---|---|---|"]
    for r in result["benchmarks"]:
        details = ", ".join(f"{k}={v}" for k, v in r["details"].items())
        lines.append(f"| {r['name']} | {r['runs']} | {r['wall_s_median']} | {r['peak_mb_median']} | {r['goal']} | {details} |")
    return "\n".join(lines) + "\n"
