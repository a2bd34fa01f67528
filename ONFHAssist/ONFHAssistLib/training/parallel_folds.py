"""`onfh cv TASK --parallel-folds N`: run the folds of a cross-validation as separate child processes.

Each child is `onfh cv TASK --fold K` with the parent's settings: it trains and scores fold K only and
writes every finished (fold, model) result atomically, exactly as a sequential run does, then exits. The
parent then runs its usual fold loop, which finds every result on disk and only assembles the table, so
a parallel run and a sequential one give the same table, and a killed run of either kind restarts from
whatever results were finished. Children share the CPU cores (OMP threads split between them) or the GPU.
"""
from __future__ import annotations

import os
import time
from dataclasses import fields

from ..errors import InputError
from ..jobs import Job, child_env, onfh_command
from ..progress import Steps

POLL_S = 0.2


def child_args(settings, fold: int) -> list[str]:
    """`onfh cv` arguments reproducing `settings` for one fold (progress as JSON lines for the parent)."""
    args = ["cv", settings.task, "--fold", str(fold), "--progress", "jsonl"]
    flags = {"data": "--data", "out": "--out", "epochs": "--epochs", "device": "--device", "seed": "--seed",
             "system": "--system", "preset": "--preset", "batch_size": "--batch-size", "lr": "--lr",
             "alpha": "--alpha", "guidance": "--guidance", "folds": "--folds", "model": "--model", "models": "--models"}
    for field in fields(settings):
        value = getattr(settings, field.name)
        if field.name in flags and value is not None:
            args += [flags[field.name], str(value)]
    if not settings.resume:
        args.append("--no-resume")
    return args


def _env(parallel: int) -> dict:
    threads = max(1, (os.cpu_count() or 1) // parallel)
    return {**child_env(), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def run(settings, reporter, parallel: int) -> None:
    """Run every fold in children, at most `parallel` at a time; children's metrics and progress are passed on
    to `reporter` under 'fold K', beside the folds started and finished with the time left. Raises after all children ended if any failed (their finished folds stay)."""
    waiting, running, failures = list(range(settings.folds)), {}, {}
    env = _env(parallel)
    steps = Steps(reporter, f"cv {settings.task}", settings.folds, parallel=min(parallel, settings.folds))
    try:
        while waiting or running:
            while waiting and len(running) < parallel:
                fold = waiting.pop(0)
                running[fold] = Job(onfh_command(child_args(settings, fold)), env=env).start()
                steps.start(f"fold {fold + 1}/{settings.folds} started", key=fold)
            for fold, job in list(running.items()):
                _forward(job.drain(), fold, reporter)
                if job.poll() is not None:
                    code = job.wait()
                    _forward(job.drain(), fold, reporter)
                    if code != 0:
                        failures[fold] = (code, job.error_message)
                    del running[fold]
                    steps.done(key=fold, label=f"fold {fold + 1}/{settings.folds} "
                                               f"{'finished' if code == 0 else 'failed'}")
            time.sleep(POLL_S)
    finally:
        for job in running.values():  # the parent was interrupted: take its children with it
            job.cancel()
    if failures:
        fold, (code, message) = min(failures.items())
        text = (f"cv fold {fold} failed ({len(failures)} of {settings.folds} folds; finished results kept): "
                f"{message.removeprefix('error: ') or f'exit {code}'}")
        raise InputError(text) if code == 2 else RuntimeError(text)


def _forward(events: list[dict], fold: int, reporter) -> None:
    if reporter is None:
        return
    for event in events:
        kind, stage = event.get("event"), f"fold {fold + 1}: {event.get('stage', '')}"
        payload = {k: v for k, v in event.items() if k not in ("event", "stage")}
        if kind == "metric":
            reporter.metric(stage, **payload)
        elif kind == "progress" and "fraction" in payload:
            reporter.progress(stage, payload.pop("fraction"), **payload)
