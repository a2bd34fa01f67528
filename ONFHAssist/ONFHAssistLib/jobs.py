"""Run an `onfh` command as a child process for a panel: stream its progress, cancel its whole tree.

Slicer's GUI thread must never block or import torch, so a panel starts a Job, and a Qt timer calls
`drain()` to pick up the events a reader thread has parsed from the child's JSON-lines stdout.
Cancel terminates the child and every process it started (DataLoader workers, torchrun ranks),
then kills whatever did not exit in time. psutil is imported only then: Slicer does not ship it, and
this module is imported by the panels' `setup()` before the first-use install could add it. On Windows
children start without a console window (PythonSlicer.exe is a console program; closing that window
would kill the run), as `slicer.util.launchConsoleProcess` does.
"""
from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path

from .progress import parse_line

# No console window for a child on Windows; 0 (no flags) elsewhere.
HIDDEN_WINDOW = getattr(subprocess, "CREATE_NO_WINDOW", 0)


class Job:
    def __init__(self, argv: list[str], cwd: str | None = None, env: dict | None = None):
        self.argv, self.cwd, self.env = argv, cwd, env
        self.process: subprocess.Popen | None = None
        self._events: queue.Queue = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=50)
        self._readers: list[threading.Thread] = []

    def start(self) -> "Job":
        self.process = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace", bufsize=1,
                                        creationflags=HIDDEN_WINDOW)
        self._readers = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for reader in self._readers:
            reader.start()
        return self

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            event = parse_line(line)
            if event is not None:
                self._events.put(event)

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            if line.strip():
                self._stderr.append(line.rstrip())

    def drain(self) -> list[dict]:
        """Every event parsed since the last call, oldest first; never blocks."""
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def poll(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def wait(self, timeout: float | None = None) -> int:
        code = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    @property
    def error_message(self) -> str:
        """The child's last stderr line: the one-sentence reason `onfh` prints before exit code 2."""
        return self._stderr[-1] if self._stderr else ""

    def cancel(self, grace_seconds: float = 5.0) -> None:
        """Terminate the child and all its descendants; kill those still alive after the grace period."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            import psutil  # noqa: F401  (installed on first use in Slicer)
        except ImportError:  # before the first-use install: only the child itself can be stopped
            self.process.kill()
            self.wait(timeout=grace_seconds)
            return
        stop_process_tree(self.process.pid, grace_seconds)
        self.wait(timeout=grace_seconds)


def stop_process_tree(pid: int, grace_seconds: float = 5.0) -> None:
    """Terminate a process and all its descendants, by PID; kill those still alive after the grace period."""
    import psutil

    try:
        parent = psutil.Process(pid)
        tree = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        return
    for proc in tree:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(tree, timeout=grace_seconds)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace_seconds)


def onfh_command(args: list[str], python: str | None = None) -> list[str]:
    """argv running `python -m ONFHAssistLib ARGS` (in Slicer, `python` is PythonSlicer)."""
    return [python or sys.executable, "-m", "ONFHAssistLib", *args]


SIDE_CHOICES = {"both": ("R", "L"), "right": ("R",), "left": ("L",)}  # the panel's Hips choice -> --sides


def run_short(args: list[str], python: str | None = None, timeout_s: float = 300.0) -> str:
    """Run a short `onfh` command to its end (a publish, a check) and return its last output line; its
    one-sentence error (exit 2) or exit code is raised as ValueError, which the panels show as such."""
    run = subprocess.run(onfh_command(args, python), capture_output=True, text=True, encoding="utf-8",
                         errors="replace", timeout=timeout_s, env=child_env(), creationflags=HIDDEN_WINDOW)
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    if run.returncode != 0:
        errors = [line for line in run.stderr.splitlines() if line.strip()]
        raise ValueError(errors[-1] if errors else f"`onfh {' '.join(args)}` stopped (exit code {run.returncode}).")
    return lines[-1] if lines else ""


def analyze_args(image: Path, out: Path, modality: str = "auto", device: str = "auto",
                 grades: dict[str, str] | None = None, models: list[str] | None = None,
                 sides: str = "both") -> list[str]:
    """`onfh analyze` arguments for a panel run; grades per side as typed ('jic_stage=2,arco=2'), blanks and
    sides left out skipped; `models` the chosen model set as TASK=NAME@VERSION picks (empty: the newest of
    each task); `sides` one of SIDE_CHOICES. The child validates them and answers a bad entry with one
    readable line."""
    chosen = SIDE_CHOICES[sides]
    args = ["analyze", str(image), "--out", str(out), "--modality", modality, "--device", device,
            "--sides", *chosen, "--progress", "jsonl"]
    for pick in models or []:
        args += ["--models", pick]
    for side, text in (grades or {}).items():
        if text.strip() and side in chosen:
            args += ["--grades", f"{side}:{text.strip().replace(' ', '')}"]
    return args


DEFAULT_MODEL_SET = "Newest model of each task"


def model_sets(models: list[dict]) -> dict[str, list[str]]:
    """The panel's model-set choices from `onfh info`'s model list: the default (newest of each task, no
    picks), then every installed model of a task that has more than one, as a TASK=NAME@VERSION pick —
    so a model published from ONFH Training appears as soon as the list is refreshed."""
    choices = {DEFAULT_MODEL_SET: []}
    by_task: dict[str, list[dict]] = {}
    for model in models:
        by_task.setdefault(model["task"], []).append(model)
    for task in sorted(by_task):
        if len(by_task[task]) < 2:
            continue
        for model in sorted(by_task[task], key=lambda m: (m["name"], str(m["version"]))):
            choices[f"{task}: {model['name']} {model['version']}"] = [f"{task}={model['name']}@{model['version']}"]
    return choices


def effective_device(choice: str, device_info: dict | None) -> tuple[str, str]:
    """The device to pass to the child and the message to show: CUDA asked for on a machine where the
    child found no GPU falls back to the CPU, saying so, instead of failing the run."""
    if choice == "cuda" and device_info is not None and device_info.get("device") != "cuda":
        return "cpu", "CUDA was asked for but no CUDA GPU is available here; running on the CPU instead."
    return choice, ""


def analysis_folder(volume_name: str, root: Path | None = None) -> Path:
    """A new folder for one analysis that outlives the panel (report, maps, analysis.json), under
    `$ONFH_ANALYSES` (default ~/.onfh/analyses), named by time and volume so that none is overwritten."""
    return _new_folder(volume_name, Path(root or os.environ.get("ONFH_ANALYSES", Path.home() / ".onfh" / "analyses")))


def run_folder(label: str, root: Path | None = None) -> Path:
    """A new folder for one training or cross-validation run started from the panel (`$ONFH_RUNS`,
    default ~/.onfh/runs): checkpoints, model, tables and plots stay there after the panel closes."""
    return _new_folder(label, Path(root or os.environ.get("ONFH_RUNS", Path.home() / ".onfh" / "runs")))


def training_args(verb: str, task: str, data: Path, out: Path, epochs: int = 0, device: str = "auto",
                  folds: int = 5, lr: float = 0.0, batch_size: int = 0, preset: str = "", init: str = "") -> list[str]:
    """`onfh train|cv TASK` arguments for a panel run; 0 or blank (epochs, learning rate, batch size,
    preset, start-from model) means the recipe's default, so the panel never overrides what it was not
    asked to. A start-from model is for training only; the child refuses it for tasks that cannot use it."""
    args = [verb, task, "--data", str(data), "--out", str(out), "--device", device, "--progress", "jsonl"]
    if epochs:
        args += ["--epochs", str(epochs)]
    if lr:
        args += ["--lr", repr(float(lr))]
    if batch_size:
        args += ["--batch-size", str(batch_size)]
    if preset.strip() and preset.strip() != "default":
        args += ["--preset", preset.strip()]
    if init.strip() and verb == "train":
        args += ["--init", init.strip()]
    if verb == "cv":
        args += ["--folds", str(folds)]
    return args


def _new_folder(label: str, root: Path) -> Path:
    from datetime import datetime

    """root/<time>-<label>, never an existing folder."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)[:60] or "run"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        folder = root / (f"{stamp}-{safe}" + (f"-{n}" if n else ""))
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise RuntimeError(f"{root}: could not create a new output folder.")


def child_env() -> dict:
    """The environment for a child: this process's, with ONFHAssistLib's folder first on PYTHONPATH."""
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
    return env
