"""A tiny regression trained by the shared engine: run in-process for the single-process reference, or as
the script torchrun starts (`python -m torch.distributed.run --nproc_per_node 2 ddp_worker.py OUT`), where
each rank writes its loss history and final weights to OUT/rank<r>.json."""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from ONFHAssistLib.training import distributed
from ONFHAssistLib.training.engine import Trainer

EPOCHS, BATCH, SAMPLES = 4, 7, 26  # 7 does not split evenly in two, and 26 leaves a short last batch


def data():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(SAMPLES + 10, 4)).astype(np.float32)
    y = (np.tanh(x @ np.array([0.5, -0.8, 0.3, 0.2])) + 0.1 * rng.normal(size=len(x))).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(y)


def train(checkpoint_dir: Path, batch: int = BATCH) -> dict:
    torch.manual_seed(0)
    x, y = data()
    x_val, y_val = x[SAMPLES:], y[SAMPLES:]
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)

    def batches(epoch):
        order = np.random.default_rng(epoch).permutation(SAMPLES)
        for start in range(0, SAMPLES, batch):
            index = order[start:start + batch]
            yield x[index], y[index]

    def batch_loss(net, b):
        return torch.nn.functional.mse_loss(net(b[0]).squeeze(1), b[1])

    def validate(net):
        return {"val_mse": float(torch.nn.functional.mse_loss(net(x_val).squeeze(1), y_val))}

    fit = Trainer(model, optimizer, batch_loss, validate, monitor="val_mse", mode="min",
                  checkpoint_dir=checkpoint_dir).fit(EPOCHS, batches)
    return {"train_loss": [h["train_loss"] for h in fit.history], "best_epoch": fit.best_epoch,
            "weights": [p.detach().reshape(-1).tolist() for p in model.parameters()],
            "val_mse": [h.get("val_mse") for h in fit.history]}


if __name__ == "__main__":
    out = Path(sys.argv[1])
    job = distributed.init_from_env("cpu")
    try:
        result = train(out / "checkpoints")
    finally:
        distributed.shutdown()
    (out / f"rank{job.rank}.json").write_text(json.dumps(result), encoding="utf-8")
