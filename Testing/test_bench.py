"""The bench measures each command's own peak memory, not the (large) process that launched it."""
import sys

import numpy as np

from ONFHAssistLib.bench import REPO, run_child


def test_peak_memory_is_the_commands_own():
    ballast = np.ones(300 * 2**20 // 8)  # make this process big: 300 MB that the child must not inherit
    idle = [sys.executable, "-S", "-c", "pass"]
    hungry = [sys.executable, "-S", "-c", "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); print('ok')"]
    _, idle_mb, _ = run_child(idle, REPO)
    wall, hungry_mb, out = run_child(hungry, REPO)
    assert idle_mb < 50 and out.strip() == "ok" and wall > 0
    assert 190 <= hungry_mb - idle_mb <= 260
    assert ballast.sum() > 0
