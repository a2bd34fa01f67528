"""ONFH Assist Web in a real browser: `onfh web` on 127.0.0.1 with an access token, headless Chromium driven by
Playwright, a scan uploaded and the demo analysed through the page. Oracles: the child processes the server really
has (psutil: their command lines, their end), the bytes of the uploaded file, analysis.json as written by the
child, plain HTTP answers without and with the token, and the pixels the browser shows (the necrosis colour around
the right head, whose centre is the view's centre once the page has centred the views on it, and on its surface in
the 3D view; a heat map's change, then undone)."""
from __future__ import annotations

import functools
import hashlib
import http.client
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ONFHAssistLib import resources
from ONFHAssistLib.bench import CHROMIUM
from ONFHAssistLib.bench import web_missing as _missing  # Chromium, EGL, the web extra: what the bench row needs too
from ONFHAssistLib.jobs import stop_process_tree
from ONFHAssistLib.web.timing import wait_until

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 90  # for a new frame: seconds on 2 busy cores (the server renders on the CPU, one view after another)
SCREENSHOT_ENV = "ONFH_WEB_SCREENSHOT"  # where to copy the page screenshot (README's Resources/Screenshots/web.png)


# `make test` skips these with the reason; `make test-web` (ONFH_WEB_REQUIRED=1) fails instead, naming it.
REQUIRED = os.environ.get("ONFH_WEB_REQUIRED") == "1"
in_browser = pytest.mark.skipif(bool(_missing()) and not REQUIRED, reason=f"browser test skipped: {_missing()}")


def test_card_says_what_analysis_json_holds():
    """Card strings against hand-written expectations from one hip's numbers."""
    from ONFHAssistLib.web.cards import hip_card

    hip = {"side": "R", "found": True, "reason": "", "ood": {"score": 3.0, "threshold": 15.0, "reliable": True},
           "stage": {"arco": {"label": "II", "index": 2, "source": "predicted",
                              "probabilities": {"0": 0.05, "I": 0.2, "II": 0.61, "III": 0.1, "IV": 0.04}}},
           "sranet": {"probability": 0.987, "attention_file": "attention.nii.gz"},
           "risk": {"group": "high", "collapse_probability": {"12": 0.041, "36": 0.155, "60": 0.5},
                    "survival": {"months": [0, 60, 120], "probability": [1.0, 0.5, 0.25]}}}
    card = hip_card(hip)
    assert card["title"] == "Right hip" and card["found"] and card["note"] == ""
    assert card["stages"] == [{"key": "arco", "system": "ARCO", "text": "II (p 0.61)",
                               "probabilities": "0 0.05, I 0.20, II 0.61, III 0.10, IV 0.04"}]
    assert card["sranet"] == "0.99" and card["risk"] == "risk above the training cohort's median"
    assert [c["text"] for c in card["collapse"]] == ["4 %", "16 %", "50 %"]
    hip["risk"].update(training_percentile=61.25, collapse_interval={"12": [0.01, 0.08], "36": [0.09, 0.21],
                                                                     "60": [0.4, 0.6]},
                       reference={"level": 0.95, "training_hips": 80})
    card = hip_card(hip)
    assert card["risk"] == "risk score higher than 61 % of the 80 training hips"
    assert card["collapse"][1]["text"] == "16 % (95 % interval 9 % to 21 %)"
    assert card["survival"] == "0.0,0.0 120.0,40.0 240.0,60.0"  # 240 × 80 box: t 0/60/120 months, S 1/0.5/0.25
    hip["risk"] = None
    assert hip_card(hip)["survival"] == ""  # falsy in the page too (an empty list is truthy in JavaScript)
    missing = hip_card({"side": "L", "found": False, "reason": "prosthesis: metal in the joint"})
    assert not missing["found"] and missing["reason"] == "prosthesis: metal in the joint" and missing["stages"] == []


def test_run_folds_a_real_childs_progress_and_its_error(tmp_path):
    """A real child speaking the JSON-lines protocol, then failing the way `onfh` does (one line, exit 2)."""
    from ONFHAssistLib import jobs
    from ONFHAssistLib.web.runner import Run

    script = ("import json, sys\n"
              "print(json.dumps({'event': 'progress', 'stage': 'analyze', 'fraction': 0.3, 'message': 'R hip'}))\n"
              "print(json.dumps({'event': 'log', 'stage': 'analyze', 'message': 'localised'}))\n"
              "print('error: scan.nii.gz: not a volume.', file=sys.stderr); sys.exit(2)\n")
    run = Run(image=tmp_path / "scan.nii.gz", out=tmp_path, job=jobs.Job([sys.executable, "-c", script]).start())
    deadline = time.monotonic() + 30
    while not run.update():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert (run.fraction, run.stage, run.log) == (0.3, "analyze R hip", ["localised"])
    assert run.error == "error: scan.nii.gz: not a volume." and not run.succeeded


@pytest.fixture(scope="module")
def own_processes():
    """Whatever this module started (server, browser, driver) is stopped by PID at the end, also on failure."""
    import psutil

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    for proc in psutil.Process().children():
        if proc.pid not in before:
            stop_process_tree(proc.pid, 10.0)


@pytest.fixture(scope="module")
def server(own_processes, tmp_path_factory):
    assert not _missing(), _missing()
    results = tmp_path_factory.mktemp("web-results")
    log = results.parent / "server.log"  # VTK's warnings and any traceback, named in a failure at start
    env = dict(os.environ, PYTHONPATH=str(ROOT / "ONFHAssist"), OMP_NUM_THREADS="1")
    token = secrets.token_urlsafe(8)  # the booth's case: every request needs it (here on 127.0.0.1, asked for)
    # `--token=…`: a URL-safe token may start with '-', which argparse would take for an option
    with open(log, "w", encoding="utf-8") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "ONFHAssistLib", "web", "--port", "0", "--results",
                                 str(results), f"--token={token}"], stdout=subprocess.PIPE, stderr=stderr, text=True,
                                env=env)
    try:
        url = _read_url(proc, timeout_s=180, log=log)
        yield {"url": url, "pid": proc.pid, "results": results, "token": token}
    finally:
        stop_process_tree(proc.pid, 10.0)


def _read_url(proc: subprocess.Popen, timeout_s: float, log: Path) -> str:
    import selectors

    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise AssertionError(f"onfh web stopped at start (exit code {proc.returncode}):\n{tail}")
        if selector.select(timeout=1):
            line = proc.stdout.readline()
            if "http://" in line:
                return line[line.index("http://"):].split()[0]
    raise AssertionError(f"onfh web printed no URL within {timeout_s:.0f} s (its log: {log})")


@pytest.fixture(scope="module")
def browser(own_processes):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


def _children(pid: int) -> list:
    import psutil

    return psutil.Process(pid).children(recursive=True)


_wait = functools.partial(wait_until, step_s=0.5)  # screenshots are the predicates: poll gently


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1500, "height": 950})
    page.goto(url)
    page.get_by_test_id("analyse").wait_for(timeout=120_000)
    return page


def test_a_token_is_made_up_only_when_the_page_leaves_this_machine():
    pytest.importorskip("aiohttp", reason="the web extra is not installed")
    from ONFHAssistLib.web.access import choose_token

    assert [choose_token(host, None) for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2")] == [None] * 4
    made = {choose_token(host, None) for host in ("0.0.0.0", "192.168.1.20", "booth.local", "0.0.0.0")}
    assert len(made) == 4 and all(len(token) >= 16 for token in made)  # a new random one each time
    assert choose_token("0.0.0.0", "fixed") == choose_token("127.0.0.1", "fixed") == "fixed"


def _get(url: str, cookie: str = "") -> tuple[int, dict, str]:
    """One plain HTTP GET, redirects not followed: status, headers, body."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                           headers={"Cookie": cookie} if cookie else {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode("utf-8", "replace")
    finally:
        connection.close()


@in_browser
def test_without_its_token_the_server_refuses_every_request(server):
    """No browser: the page, its files, the views' websocket and the results folder answer 403 with one sentence
    without the token (or with a wrong one); the token in the URL answers with a cookie and the address without
    it; the cookie then opens the page."""
    base, token = server["url"].split("?")[0], server["token"]
    assert server["url"] == f"{base}?token={token}"
    for url in (base, f"{base}index.html", f"{base}ws", f"{base}onfh-results/", f"{base}?token=wrong{token}"):
        status, _, body = _get(url)
        assert status == 403 and body.startswith("ONFH Assist Web: this server needs its access token."), url
    status, headers, _ = _get(server["url"])
    assert status == 303 and headers["Location"] == "/"
    assert f"onfh_token={token};" in headers["Set-Cookie"] and "HttpOnly" in headers["Set-Cookie"]
    status, _, body = _get(f"{base}index.html", cookie=f"onfh_token={token}")
    assert status == 200 and "<html" in body.lower()
    assert _get(f"{base}index.html", cookie=f"onfh_token={token}x")[0] == 403


def _choose(page, testid: str, option: str) -> None:
    page.get_by_test_id(testid).click()
    page.get_by_role("option", name=option, exact=True).click()


def _reads(proc, path: Path) -> bool:
    import psutil

    try:
        return str(path) in proc.cmdline()
    except psutil.NoSuchProcess:
        return False


@in_browser
def test_an_uploaded_scan_is_analysed_and_cancel_stops_the_whole_child_tree(server, browser):
    """The demo volume through the page's file input: saved on the server byte for byte, named on the page, and the
    file the analysis child is started on; a second page sees the run and cannot start another; Cancel leaves the
    server without a child."""
    demo = resources.DEMO / json.loads((resources.DEMO / "demo.json").read_text(encoding="utf-8"))["scan"]
    page = _open(browser, server["url"])
    _choose(page, "source", "Upload a file")
    page.locator('input[type="file"]').set_input_files(str(demo))
    shown = page.get_by_test_id("upload-name")
    shown.wait_for(timeout=60_000)
    saved = Path(shown.inner_text().split(": ", 1)[1].strip())
    assert saved == server["results"] / "uploads" / demo.name
    assert hashlib.sha256(saved.read_bytes()).digest() == hashlib.sha256(demo.read_bytes()).digest()
    page.get_by_test_id("analyse").click()
    _wait(lambda: any(_reads(child, saved) for child in _children(server["pid"])), 30,
          "an analysis child started on the uploaded file")
    visitor = _open(browser, server["url"])  # a second page on the same server sees the run, cannot start another
    assert visitor.get_by_test_id("analyse").is_disabled()
    assert visitor.get_by_test_id("cancel").is_enabled()
    visitor.close()
    page.get_by_test_id("cancel").click()
    _wait(lambda: not _children(server["pid"]), 20, "every child process to end after Cancel")
    _wait(lambda: page.get_by_test_id("stage-line").inner_text() == "cancelled", 10, "the page to say cancelled")
    assert page.get_by_test_id("analyse").is_enabled()
    page.close()


def _rgb(png: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _necrosis_mask(png: bytes) -> np.ndarray:
    """Pixels of the necrosis segment's red (fill or outline): red well above green and blue. The yellow
    orientation letters, cyan head boxes, blue femur, yellow pelvis and grey anatomy all fail it."""
    rgb = _rgb(png)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (r - np.maximum(g, b) > 30) & (r > 2 * g) & (r > 2 * b)


def _disc(shape, radius: float) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    return (xx - (w - 1) / 2) ** 2 + (yy - (h - 1) / 2) ** 2 <= radius ** 2


@in_browser
def test_demo_analysis_through_the_page(server, browser, tmp_path):
    page = _open(browser, server["url"])
    _choose(page, "source", "Bundled demo hip (MR)")  # every page shares one state: an earlier test uploaded a scan
    page.get_by_test_id("analyse").click()
    page.locator('[data-testid="card-R"]').wait_for(timeout=400_000)
    out_dir = Path(page.get_by_test_id("out-dir").inner_text().strip())
    analysis = json.loads((out_dir / "analysis.json").read_text(encoding="utf-8"))
    hips = {h["side"]: h for h in analysis["hips"]}

    # Each card: the key finding in the report's words, and the staging network's own system with the label and
    # probability analysis.json holds (the other systems are not repeated: one network output, one stage).
    from ONFHAssistLib.analysis.findings import key_findings

    for finding in key_findings(analysis):
        card = page.get_by_test_id(f"card-{finding['side']}")
        assert card.get_by_test_id("finding").inner_text() == finding["sentence"], finding["side"]
        system, stage = next(iter(hips[finding["side"]]["stage"].items()))
        p = stage["probabilities"][stage["label"]]
        expected = f"{stage['label']} (p {p:.2f}{', uncertain' if p < 0.5 else ''})"
        assert card.get_by_test_id(f"stage-{system}").inner_text() == expected, (finding["side"], system)
        has_risk = hips[finding["side"]]["risk"] is not None
        assert ("Survival without collapse" in card.inner_text()) == has_risk, finding["side"]
    right = hips["R"]
    assert right["found"] and right["volumes_ml"]["necrosis"] > 0

    # Centred on the right head, fitted to its box: the head's centre is the coronal view's centre.
    page.get_by_test_id("focus-R").click()
    coronal = page.locator('.layout-grid-item:has([data-view="Green"])')  # the view's frame (its image is replaced)

    threed = page.locator('.layout-grid-item:has([data-view="ThreeD"])')

    def coronal_pixels() -> bytes:
        return page.screenshot(clip=coronal.bounding_box())

    def threed_necrosis() -> int:
        """Necrosis-red pixels in the 3D view: the segment's surface inside the translucent femur surface."""
        return int(_necrosis_mask(page.screenshot(clip=threed.bounding_box())).sum())

    def threed_necrosis_centred():
        """The necrosis surface near the 3D view's centre: the camera fitted to the right head's box (the lesion
        lies in the head, a fraction of the box from its centre; before the fit both boxes share the view)."""
        mask = _necrosis_mask(page.screenshot(clip=threed.bounding_box()))
        if mask.sum() <= 50:
            return None
        ys, xs = np.nonzero(mask)
        offset = np.hypot(xs.mean() - (mask.shape[1] - 1) / 2, ys.mean() - (mask.shape[0] - 1) / 2)
        return offset < 0.15 * min(mask.shape)

    def necrosis_near_head():
        mask = _necrosis_mask(coronal_pixels())
        radius_px = right["radius_mm"] * min(mask.shape) / right["box"]["size_mm"]
        inside = int((mask & _disc(mask.shape, 1.2 * radius_px)).sum())
        return (mask, inside) if inside > 50 else None

    mask, inside = _wait(necrosis_near_head, WAIT_S, "the necrosis colour around the right head in the coronal view")
    assert inside / mask.sum() > 0.9, "necrosis colour away from the right head"
    _wait(threed_necrosis_centred, WAIT_S, "the necrosis surface at the centre of the 3D view")
    page.screenshot(path=str(tmp_path / "web.png"))
    if os.environ.get(SCREENSHOT_ENV):
        Path(os.environ[SCREENSHOT_ENV]).write_bytes((tmp_path / "web.png").read_bytes())

    page.get_by_test_id("toggle-seg").locator("input").click()
    _wait(lambda: not _necrosis_mask(coronal_pixels()).any() and threed_necrosis() == 0, WAIT_S,
          "the necrosis colour to go with the toggle, in the coronal and the 3D view")
    page.get_by_test_id("toggle-seg").locator("input").click()
    _wait(necrosis_near_head, WAIT_S, "the necrosis colour to come back with the toggle")
    _wait(threed_necrosis_centred, WAIT_S, "the necrosis surface back in the 3D view")

    # A heat map over the slice, then none again: the view changes, then returns to what it was.
    before = _rgb(coronal_pixels())
    _choose_heat_map(page, "SRANet attention")
    _wait(lambda: (np.abs(_rgb(coronal_pixels()) - before).sum(-1) > 60).mean() > 0.05, WAIT_S,
          "the attention map over the coronal view")
    _choose_heat_map(page, "none")
    _wait(lambda: (np.abs(_rgb(coronal_pixels()) - before).sum(-1) > 60).mean() < 0.002, WAIT_S,
          "the coronal view without a heat map again")
    page.close()


def _choose_heat_map(page, name: str) -> None:
    page.get_by_test_id("heatmap").click()
    page.get_by_role("option", name=name, exact=True).click()


def test_an_upload_is_saved_whole_and_only_as_a_volume_file(tmp_path):
    """No browser: what the page's upload handler keeps. A volume file lands whole under its own name (no temporary
    file beside it); a path-like or non-volume name is one sentence, and nothing is written."""
    from ONFHAssistLib.web.runner import save_upload

    folder = tmp_path / "uploads"
    saved = save_upload(folder, "../../scan.nii.gz", [b"abc", b"def"])
    assert saved == folder / "scan.nii.gz" and saved.read_bytes() == b"abcdef"
    assert sorted(p.name for p in folder.iterdir()) == ["scan.nii.gz"]
    for bad in ("..", "", "notes.txt"):
        with pytest.raises(ValueError, match="upload one volume file"):
            save_upload(folder, bad, b"x")
    assert sorted(p.name for p in folder.iterdir()) == ["scan.nii.gz"]


def test_the_segmentation_gets_surfaces_where_its_voxels_are():
    """No browser: the 3D view's surfaces (`mrml.add_closed_surface`) against the demo label map itself. Each
    segment's surface spans its voxels' extent in RAS (SimpleITK's LPS voxel centres, x and y negated) to within
    one voxel (the surface runs half a voxel outside the centres; smoothing pulls it in)."""
    import SimpleITK as sitk
    import vtk

    from ONFHAssistLib.imaging import io
    from ONFHAssistLib.slicer import demo_case, mrml

    scene = mrml.new_scene()
    label = io.read_image(demo_case.label_path())
    seg = mrml.add_segmentation(scene, label, mrml.add_volume(scene, io.read_image(demo_case.image_path()), "demo"),
                                "demo segmentation")
    mrml.add_closed_surface(seg)
    values = sitk.GetArrayViewFromImage(label)
    tolerance = max(label.GetSpacing())
    direction = np.asarray(label.GetDirection()).reshape(3, 3)
    segmentation = seg.GetSegmentation()
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        surface = vtk.vtkPolyData()
        assert seg.GetClosedSurfaceRepresentation(segmentation.GetNthSegmentID(index), surface)
        ijk = np.argwhere(values == segment.GetLabelValue())[:, ::-1]
        lps = np.asarray(label.GetOrigin()) + (ijk * label.GetSpacing()) @ direction.T
        ras = lps * [-1, -1, 1]
        low, high = ras.min(0), ras.max(0)
        bounds = np.array(surface.GetBounds()).reshape(3, 2)
        assert surface.GetNumberOfPoints() > 100, segment.GetName()
        assert np.allclose(bounds[:, 0], low, atol=tolerance) and np.allclose(bounds[:, 1], high, atol=tolerance), (
            segment.GetName(), bounds.tolist(), low, high)
