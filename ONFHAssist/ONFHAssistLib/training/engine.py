"""One training loop for every task: epochs, validation, early stop, atomic checkpoints, resume.

A recipe supplies the model, an optimiser, a function computing the loss of one batch, a function
yielding the batches of an epoch, and a validation function returning metrics. The engine owns
everything that must be the same for all tasks: checkpointing after every epoch (weights as
safetensors, optimiser state via torch.save read back with weights_only=True), resuming after a
crash with at most one epoch lost, keeping the best epoch by a monitored metric, and progress (each epoch's
start and end, with an ETA from the finished epochs, `progress.Steps`).
Without a validation function (no validation split: a small dataset, or `--folds 0`) every epoch runs and the
last is kept; an epoch whose monitored metric is undefined (None or NaN, e.g. a C-index on a split without a
comparable pair) neither improves nor counts towards early stopping, and when no epoch had it defined the last
epoch is kept. `FitResult.selection` says which rule chose the weights, for the log and the model card.
Under torchrun the same loop is data-parallel (`distributed.py`): every rank trains on its slice of each
batch through DistributedDataParallel, rank 0 alone validates, reports and writes checkpoints, and the
other ranks wait at a barrier until each checkpoint is on disk.
"""
from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path
from ..models import weights as weight_files
from ..progress import Steps
from . import distributed

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    """What a recipe records in the model card."""

    epochs_run: int
    best_epoch: int
    best_metric: float
    history: list[dict] = field(default_factory=list)
    resumed_from: int = 0
    selection: str = ""  # the rule that chose the kept weights, in words


def undefined(value) -> bool:
    """A metric that could not be computed: None or not a finite number."""
    return value is None or not math.isfinite(float(value))


def _atomic(path: Path, write: Callable[[str], None]) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def random_states(rng: np.random.Generator | None) -> dict:
    """numpy's global, Python's and the recipe's generator state as JSON (no pickle: a checkpoint folder is
    something a user may hand us); torch's own state travels in state.pt."""
    legacy = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {"numpy_legacy": [legacy[0], legacy[1].tolist(), int(legacy[2]), int(legacy[3]), float(legacy[4])],
            "python": [version, list(internal), gauss], "generator": rng.bit_generator.state if rng is not None else None}


def restore_random_states(states: dict, rng: np.random.Generator | None) -> None:
    name, keys, pos, has_gauss, cached = states["numpy_legacy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if rng is not None and states.get("generator") is not None:
        rng.bit_generator.state = states["generator"]


class Trainer:
    """Runs epochs; `monitor` names the validation metric to maximise (or minimise with mode='min')."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 batch_loss: Callable[[torch.nn.Module, object], torch.Tensor],
                 validate: Callable[[torch.nn.Module], dict] | None, monitor: str = "loss", mode: str = "min",
                 checkpoint_dir: str | Path | None = None, patience: int = 0, reporter=None, stage: str = "train",
                 rng: np.random.Generator | None = None):
        self.model, self.optimizer = model, optimizer
        self.batch_loss, self.validate = batch_loss, validate
        self.monitor, self.sign = monitor, (1.0 if mode == "max" else -1.0)
        self.dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.patience, self.reporter, self.stage = patience, reporter, stage
        self.rng = rng  # the recipe's batch and augmentation generator: checkpointed so a resume is bit-identical
        self.dist = distributed.context()
        self.net = distributed.wrap(model, self.dist)  # what the training step calls (DDP in a job)
        self.device = next(model.parameters()).device

    def fit(self, epochs: int, batches: Callable[[int], Iterable], resume: bool = True) -> FitResult:
        state = self._resume() if (resume and self.dir) else None
        start = state["epoch"] + 1 if state else 0
        history = state["history"] if state else []
        best = (state["best_metric"], state["best_epoch"]) if state else (-math.inf, -1)
        stale = state["stale"] if state else 0
        steps = Steps(self.reporter if self.dist.primary else None, self.stage, epochs, done=start)
        for epoch in range(start, epochs):
            started = time.perf_counter()
            steps.start(f"epoch {epoch + 1}/{epochs}")
            train_loss = self._train_epoch(batches(epoch))
            metrics = {"epoch": epoch, "train_loss": train_loss}
            if self.validate is not None and self.dist.primary:
                self.model.eval()
                with torch.no_grad():
                    metrics.update(self.validate(self.model))
            value = metrics.get(self.monitor, train_loss if self.monitor == "loss" else None)
            score = math.nan if undefined(value) else self.sign * float(value)
            score = distributed.broadcast([score], self.dist, self.device)[0]  # every rank takes rank 0's view
            improved = self.validate is None or score > best[0]  # NaN never improves; fixed epochs: keep the last
            if improved:
                best, stale = (score, epoch), 0
            elif not math.isnan(score):
                stale += 1
            history.append(metrics)
            self._checkpoint(epoch, history, best, stale, improved)
            self._report(steps, metrics, time.perf_counter() - started)
            if self.patience and stale >= self.patience:
                log.info("early stop at epoch %d (no improvement in %d epochs)", epoch, self.patience)
                if steps.reporter is not None:  # the stage ends here, not at `epochs`
                    steps.reporter.progress(self.stage, 1.0, message=f"early stop after epoch {epoch + 1}/{epochs}")
                break
        if best[1] < 0 and history:  # no epoch had a defined metric: keep the last weights (already in the model)
            best = (math.nan, history[-1]["epoch"])
            log.warning("%s: %s was undefined at every epoch; the last epoch (%d) is kept", self.stage, self.monitor,
                        best[1] + 1)
        self._restore_best()
        return FitResult(len(history), best[1], None if math.isnan(best[0]) else self.sign * best[0], history,
                         resumed_from=start, selection=self._selection(len(history), best))

    def _selection(self, epochs_run: int, best: tuple) -> str:
        if self.validate is None:
            return f"no validation: the last of {epochs_run} epochs is kept"
        if math.isnan(best[0]):
            return f"{self.monitor} was undefined at every epoch: the last of {epochs_run} epochs is kept"
        return f"best {self.monitor} (epoch {best[1] + 1} of {epochs_run})"

    def _train_epoch(self, batches: Iterable) -> float:
        """Mean batch loss; in a job each rank's loss is weighted by its share, so DDP's gradient average and
        the summed epoch loss are those of the whole batch."""
        self.model.train()
        total, count = 0.0, 0
        for part, share in distributed.shards(batches, self.dist):
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.batch_loss(self.net, part)
            (loss * (share * self.dist.world) if self.dist.active else loss).backward()
            self.optimizer.step()
            total, count = total + share * float(loss.detach()), count + 1
        return distributed.all_sum([total], self.dist, self.device)[0] / max(count, 1)

    def _report(self, steps: Steps, metrics: dict, seconds: float) -> None:
        """Metrics, then the epoch's end as progress carrying its wall time (training + validation; `onfh bench`
        reads it) and the ETA of the remaining epochs."""
        if steps.reporter is not None:
            shown = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in metrics.items()}
            steps.reporter.metric(self.stage, **shown)
        steps.done(epoch_s=round(seconds, 3))

    def _checkpoint(self, epoch, history, best, stale, improved) -> None:
        if self.dir is None:
            return
        if self.dist.primary:
            self._write_checkpoint(epoch, history, best, stale, improved)
        distributed.barrier(self.dist)  # no rank runs ahead of a checkpoint it might resume from

    def _write_checkpoint(self, epoch, history, best, stale, improved) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if improved:
            _atomic(self.dir / "best.safetensors", lambda p: weight_files.save(self.model, p))
        _atomic(self.dir / "last.safetensors", lambda p: weight_files.save(self.model, p))
        meta = {"epoch": epoch, "history": history, "best_metric": best[0], "best_epoch": best[1], "stale": stale,
                "optimizer": self.optimizer.state_dict(), "torch_rng": torch.get_rng_state()}
        _atomic(self.dir / "rng.json", lambda p: Path(p).write_text(json.dumps(random_states(self.rng)), encoding="utf-8"))
        _atomic(self.dir / "state.pt", lambda p: torch.save(meta, p))

    def _resume(self) -> dict | None:
        if not (self.dir / "state.pt").exists() or not (self.dir / "last.safetensors").exists():
            return None
        state = torch.load(self.dir / "state.pt", weights_only=True)
        weight_files.load(self.model, self.dir / "last.safetensors", device=str(next(self.model.parameters()).device))
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if (self.dir / "rng.json").exists():
            restore_random_states(json.loads((self.dir / "rng.json").read_text(encoding="utf-8")), self.rng)
        log.info("resuming after epoch %d", state["epoch"])
        return state

    def _restore_best(self) -> None:
        if self.dir is not None and (self.dir / "best.safetensors").exists():
            device = next(self.model.parameters()).device
            weight_files.load(self.model, self.dir / "best.safetensors", device=str(device))
