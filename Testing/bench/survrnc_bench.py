"""SurvRNC on a batch of 64: the vectorised loss against a straightforward per-anchor loop (run by `make bench`)."""
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_losses import _survrnc_loop  # noqa: E402

from ONFHAssistLib.models.losses import survrnc_loss  # noqa: E402


def bench(n: int = 64, repeats: int = 5) -> dict:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(n, 32))
    t = rng.integers(1, 120, size=n).astype(float)
    e = rng.integers(0, 2, size=n)
    zt, tt, et = torch.tensor(z), torch.tensor(t), torch.tensor(e)
    survrnc_loss(zt, tt, et)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fast = float(survrnc_loss(zt, tt, et))
    vectorised = (time.perf_counter() - start) / repeats
    start = time.perf_counter()
    slow = _survrnc_loop(z, t, e, 2.0)
    loop = time.perf_counter() - start
    return {"batch": n, "vectorised_ms": round(1000 * vectorised, 2), "loop_ms": round(1000 * loop, 1),
            "speed_up": round(loop / vectorised, 1), "abs_difference": float(abs(fast - slow))}


if __name__ == "__main__":
    print(bench())
