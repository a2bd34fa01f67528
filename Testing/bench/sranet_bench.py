"""SRANet on one 128³ hip crop: all 64 patches as one batch vs a per-patch loop (run by `make bench`)."""
import time

import torch

from ONFHAssistLib.models.sranet import N_PATCHES, SRANet, to_patches


def bench(repeats: int = 3) -> dict:
    torch.manual_seed(0)
    net = SRANet().eval()
    volume = torch.randn(1, 1, 128, 128, 128)
    patches = to_patches(volume)[0]
    with torch.no_grad():
        net(volume)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            net(volume)
        batched = (time.perf_counter() - start) / repeats
        start = time.perf_counter()
        for _ in range(repeats):
            torch.cat([net.encoder(patches[p:p + 1]) for p in range(N_PATCHES)])
        looped = (time.perf_counter() - start) / repeats
    return {"per_hip_batched_s": round(batched, 3), "encoder_loop_s": round(looped, 3),
            "speed_up": round(looped / batched, 2), "parameters": sum(p.numel() for p in net.parameters()),
            "size_mb": round(sum(p.numel() for p in net.parameters()) * 4 / 1e6, 1)}


if __name__ == "__main__":
    print(bench())
