"""The web row of `onfh bench` (`python -m ONFHAssistLib.web.timing`, run as a child by bench.py): a fresh
`onfh web` and headless Chromium each time; server start → first frame in all four views, the demo analysed
through the page, a slice change in the coronal view → its new frame, and the server's memory. Medians over
`REPEATS` servers, printed as one JSON line.

A frame is the image trame-rca puts into a view (an <img> per frame, read back here through a canvas): a view has
its first frame once its image has loaded, and a slice change is done once the coronal image's pixels differ from
before the wheel step."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPEATS = 3
TIMEOUT_S = 600.0
CHROMIUM = "/usr/lib/chromium/chromium"  # Debian's; Playwright's own browser download is not used
VIEWS = ("Red", "Green", "Yellow", "ThreeD")  # Slicer's axial, coronal, sagittal and 3D views (`data-view`)
# Per view: -1 before it shows a frame, else a checksum of the frame's pixels (drawn onto a scratch canvas).
FRAME_JS = """tag => {
  const item = [...document.querySelectorAll('.layout-grid-item')].find(
      e => e.querySelector(`[data-view="${tag}"]`));
  const img = item && item.querySelector('img.image-display-area');
  if (!img || !img.complete || !img.naturalWidth) return -1;
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const context = canvas.getContext('2d');
  context.drawImage(img, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0;
  for (let i = 0; i < data.length; i += 4) sum = (sum * 31 + data[i] + 7 * data[i + 1] + 13 * data[i + 2]) % 2147483647;
  return sum;
}"""


def wait_until(predicate, timeout_s: float, what: str, step_s: float = 0.05):
    """The predicate's first truthy value, polled every step_s; TimeoutError naming `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step_s)
    raise TimeoutError(f"waited {timeout_s:.0f} s for {what}")


def _url(proc: subprocess.Popen) -> str:
    for line in proc.stdout:
        if "http://" in line:
            return line[line.index("http://"):].split()[0]
    raise RuntimeError(f"onfh web stopped before printing its URL (exit code {proc.wait()})")


def _peak_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def one_server(browser, results: Path) -> dict:
    """Seconds and MB of one fresh server, the demo analysed through its page."""
    import psutil

    from ..jobs import stop_process_tree

    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "ONFHAssistLib", "web", "--port", "0", "--results", str(results)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        url = _url(proc)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        page.goto(url)
        wait_until(lambda: all(page.evaluate(FRAME_JS, tag) >= 0 for tag in VIEWS), TIMEOUT_S, "a frame in every view")
        first_frame = time.monotonic() - start
        clicked = time.monotonic()
        page.get_by_test_id("analyse").click()
        page.locator('[data-testid="card-R"]').wait_for(timeout=TIMEOUT_S * 1000)
        cards = time.monotonic() - clicked
        coronal = page.locator('.layout-grid-item:has([data-view="Green"])')
        time.sleep(3.0)  # the views' frames of the loaded results settle (each render sends one)
        before = page.evaluate(FRAME_JS, "Green")
        box = coronal.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        stepped = time.monotonic()
        page.mouse.wheel(0, 120)  # one wheel step: the next slice
        wait_until(lambda: page.evaluate(FRAME_JS, "Green") != before, 120, "the coronal view's next slice")
        slice_change = time.monotonic() - stepped
        server = psutil.Process(proc.pid)
        row = {"first_frame_s": first_frame, "analyse_to_cards_s": cards, "slice_change_s": slice_change,
               "server_rss_mb": server.memory_info().rss / 2**20, "server_peak_mb": _peak_mb(proc.pid)}
        page.close()
        return row
    finally:
        stop_process_tree(proc.pid, 10.0)


def measure(repeats: int = REPEATS) -> dict:
    """Medians over `repeats` fresh servers (seconds rounded to 0.01 s, memory to 1 MB)."""
    from playwright.sync_api import sync_playwright

    rows = []
    with tempfile.TemporaryDirectory(prefix="onfh-web-bench-") as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for k in range(repeats):
                rows.append(one_server(browser, Path(tmp) / str(k)))
        finally:
            browser.close()
    digits = {"first_frame_s": 2, "analyse_to_cards_s": 2, "slice_change_s": 2, "server_rss_mb": 0,
              "server_peak_mb": 0}
    return {key: round(statistics.median(r[key] for r in rows), d) for key, d in digits.items()}


if __name__ == "__main__":
    print(json.dumps(measure()))
