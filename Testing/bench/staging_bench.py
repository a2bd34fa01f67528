"""Staging network on one 64³ hip crop: forward pass, and forward + Grad-CAM as the pipeline runs it (`make bench`)."""
import time

import torch
from monai.visualize import GradCAM

from ONFHAssistLib.models.staging import MulPoolDenseNet
from ONFHAssistLib.training.staging_recipe import ARCHITECTURE, INPUT


def bench(repeats: int = 5) -> dict:
    torch.manual_seed(0)
    net = MulPoolDenseNet(5, **ARCHITECTURE).eval()
    cam = GradCAM(nn_module=net, target_layers=net.cam_layer)
    x = torch.randn(1, 1, INPUT, INPUT, INPUT)
    with torch.no_grad():
        net(x)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            net(x)
        forward = (time.perf_counter() - start) / repeats
    start = time.perf_counter()
    for _ in range(repeats):
        cam(x, class_idx=1)
    with_cam = (time.perf_counter() - start) / repeats
    return {"per_hip_forward_s": round(forward, 3), "per_hip_gradcam_s": round(with_cam, 3),
            "parameters": sum(p.numel() for p in net.parameters())}


if __name__ == "__main__":
    print(bench())
