"""`onfh bench` / `make bench`: whole-process wall time and peak memory, medians over several runs.

Each benchmark is a command run as a fresh child process, so import time, model loading and
memory are counted as a user would feel them. Peak memory is the command's max RSS from wait4(),
which the kernel records exactly (no polling), taken through a small launcher (see `_LAUNCHER`). Micro-benchmarks that compare two implementations
(batched vs per-patch SRANet, vectorised vs per-anchor SurvRNC) are functions in
`Testing/bench/*.py` returning their own numbers; they run in a child process too.

Training benches run `onfh train TASK --epochs 1` on a small phantom cohort and read the epoch's own
time from the progress stream (the whole-process wall also holds caching the crops). The CV of a
seed-000-sized cohort takes ≈ 11 min on 2 cores, so it is a group of its own (`onfh bench --cv`,
`make bench-cv`). With CUDA present, the analyze and training benches run once more on the GPU.
The web row (`web/timing.py`: a fresh `onfh web` and headless Chromium per run) is left out, with the reason
printed, where the web extra, Debian's Chromium or EGL is missing.
Results merge by name into results.json, so a partial run (`--only`, `--cv`) keeps the other rows.
"""
from __future__ import annotations

import ctypes.util
import importlib.util
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
CHROMIUM = Path("/usr/lib/chromium/chromium")  # Debian's, driven by Playwright (the web row and its test)


@dataclass
class Bench:
    """A command to time; `prepare` makes its inputs once in `work` and returns extra argv."""

    name: str
    goal: str
    argv: Callable[[Path], list[str]]
    repeats: int = 3
    parse_stdout: bool = False
    details: Callable[[str], dict] | None = None  # numbers read from the command's stdout
    group: str = "default"
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


TRAIN_COHORT = dict(patients=8, seed=4243, modality="mr_t1")  # 16 hips, 10 with ONFH, 3 collapses
TRAIN_TASKS = ("localizer", "segmentation", "staging", "sranet", "survival")
CV_COHORT = dict(patients=70, seed=0, modality="mr_t1")  # the seed-000-shaped cohort of the README's CV table


def default_benches(groups: tuple[str, ...] = ("default",)) -> list[Bench]:
    """Every bench of the chosen groups: 'default' (`make bench`) and 'cv' (`make bench-cv`)."""
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    benches = _default_group(devices) + _web_group() + _training_group(devices) + _cv_group()
    return [b for b in benches if b.group in groups]


def web_missing() -> str:
    """Why ONFH Assist Web cannot be run in a browser here ('' when it can)."""
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (Debian package chromium; `make test-web` installs it)"
    if ctypes.util.find_library("EGL") is None or not list(Path("/usr/lib").glob("*/libEGL_mesa.so*")):
        return "no EGL for offscreen VTK (Debian packages libegl1 libegl-mesa0; `make test-web` installs them)"
    for module in ("trame_slicer", "playwright", "psutil"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (the web extra: `make web` installs it)"
    return ""


def _web_group() -> list[Bench]:
    reason = web_missing()
    if reason:
        print(f"bench: the web row is left out: {reason}", file=sys.stderr)
        return []
    return [Bench("web: server start → first frame (4 views), demo analysed through the page, slice change, server "
                  "memory (medians of 3 servers)", "—", lambda w: [sys.executable, "-m", "ONFHAssistLib.web.timing"],
                  repeats=1, parse_stdout=True)]


def _default_group(devices: list[str]) -> list[Bench]:
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
    for device in devices:
        benches.append(Bench("analyze both hips 256x256x160 (every installed model, maps, report)"
                             + ("" if device == "cpu" else f" [{device}]"), "≤ 20 s, ≤ 3 GB",
                             lambda w, d=device: onfh + ["analyze", str(_bench_volume(w)), "--out", str(w / "an"),
                                                         "--device", d, "--progress", "none"]))
    for path, func, goal in (("Testing/bench/survrnc_bench.py", "bench", "vectorised faster than loop"),
                             ("Testing/bench/sranet_bench.py", "bench", "per-hip ≤ 2 s; batched faster"),
                             ("Testing/bench/staging_bench.py", "bench", "per-hip ≤ 2 s")):
        if (REPO / path).exists():
            benches.append(Bench(Path(path).stem, goal, lambda w, p=path, f=func: python_function(str(REPO / p), f),
                                 repeats=1, parse_stdout=True))
    return benches


def _training_group(devices: list[str]) -> list[Bench]:
    onfh = [sys.executable, "-m", "ONFHAssistLib"]
    benches = []
    for device in devices:
        for task in TRAIN_TASKS:
            name = f"train {task}: 1 epoch, 8-patient phantom" + ("" if device == "cpu" else f" [{device}]")
            benches.append(Bench(name, "—", lambda w, t=task, d=device: onfh + [
                "train", t, "--data", str(_cohort(w, "bench-train-cohort", TRAIN_COHORT)), "--out", str(w / "train"),
                "--epochs", "1", "--device", d, "--progress", "jsonl"], repeats=1, details=epoch_details))
    return benches


def _cv_group() -> list[Bench]:
    onfh = [sys.executable, "-m", "ONFHAssistLib"]
    return [Bench("cv survival, 70-patient seed-000-sized cohort, 5 folds, cpu preset (every model row)",
                  "well under 1 h on 2 cores", lambda w: onfh + [
                      "cv", "survival", "--data", str(_cohort(w, "bench-cv-cohort", CV_COHORT)), "--out", str(w / "cv"),
                      "--folds", "5", "--preset", "cpu", "--device", "cpu", "--progress", "none"],
                  repeats=1, group="cv", details=cv_c_index)]


def cv_c_index(stdout: str) -> dict:
    """Harrell's C (mean ± sd over folds) per model row from the Markdown table `onfh cv` prints, so the
    timed run also records what it found."""
    header, found = None, {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or set(cells[0]) <= {"-"}:
            continue
        if header is None:
            header = cells
        elif "harrell_c" in header:
            found[cells[0]] = cells[header.index("harrell_c")]
    return {"harrell_c": found} if found else {}


def epoch_details(stdout: str) -> dict:
    """The last epoch's own wall time and training loss from an `onfh train --progress jsonl` stream."""
    from .progress import parse_line

    events = [e for e in map(parse_line, stdout.splitlines()) if e]
    out = {}
    for e in events:
        if e.get("event") == "progress" and "epoch_s" in e:
            out["epoch_s"] = e["epoch_s"]
        if e.get("event") == "metric" and "train_loss" in e:
            out["train_loss"] = e["train_loss"]
    return out


def _cohort(work: Path, name: str, spec: dict) -> Path:
    """A phantom cohort made once per bench session (not timed), beside the per-run work folders."""
    from .phantom.cohort import write_cohort

    cached = work.parent / name
    if not (cached / "hips.csv").exists():
        write_cohort(cached, spec["patients"], seed=spec["seed"], modality=spec["modality"])
    return cached


def _bench_volume(work: Path) -> Path:
    """A 256×256×160 phantom MR scan at 1.5 mm, made once per bench session (not timed)."""
    from .phantom.cohort import write_cohort

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
                elif bench.details is not None:
                    extra = bench.details(out)
            rows.append({"name": bench.name, "goal": bench.goal, "runs": bench.repeats,
                         "wall_s_median": round(statistics.median(walls), 3),
                         "peak_mb_median": round(statistics.median(peaks), 1), "details": extra,
                         "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")})
            if reporter is not None:
                reporter.progress("bench", (i + 1) / len(benches), message=bench.name)
    here = machine()
    result = {"machine": here, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "benchmarks": merge_rows(out_dir / "results.json", rows, here)}
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "results.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out_dir / "results.md", markdown(result))
    return result


def merge_rows(previous: Path, rows: list[dict], here: dict) -> list[dict]:
    """This run's rows replace same-named rows of the last results; rows not re-run are kept, in order,
    when the last results come from the same machine (never a table mixing two machines)."""
    last = json.loads(previous.read_text(encoding="utf-8")) if previous.exists() else {}
    same = ("cpus", "python", "torch", "cuda", "gpu")  # not the kernel build: a rebooted VM is the same machine
    old = last.get("benchmarks", []) if all(last.get("machine", {}).get(k) == here.get(k) for k in same) else []
    fresh = {r["name"]: r for r in rows}
    merged = [fresh.pop(r["name"], r) for r in old]
    return merged + list(fresh.values())


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
