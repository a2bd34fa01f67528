"""The report as a printable A4 PDF next to report.html: for the paper chart, the referral letter, the archive.

Drawn with matplotlib's PdfPages (no extra dependency). Every page carries the not-for-clinical-use banner,
the patient header and its page number; the key findings come first, then the per-hip measurement tables,
the key images and the technical details. Blocks flow down the page and a block that does not fit the
rest of a page starts the next one, so no table is split across pages.
"""
from __future__ import annotations

import io as bytes_io
import textwrap
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from PIL import Image  # noqa: E402

from .. import __version__  # noqa: E402
from ..atomic import atomic_path  # noqa: E402
from .findings import (collapse_text, grade_lines, interval_note, key_findings, percent_text,  # noqa: E402
                       probability_text, risk_reference_text)

PAGE_W, PAGE_H = 8.27, 11.69  # A4 in inches
MARGIN = 0.6
TOP = 1.45  # banner and patient header above this (inches from the top edge)
BOTTOM = PAGE_H - 0.55  # page number below this
BODY_W = PAGE_W - 2 * MARGIN
LINE = 0.19  # one 9-pt text line
ROW = 0.23  # one table row
CHARS_PER_LINE = 112  # 9-pt sans on BODY_W
FLAG_COLOURS = {"positive": "#b00020", "negative": "#1b7a3a", "not_assessed": "#8a5a00"}
HORIZONS = (12, 36, 60)
PRINT_DPI = 250  # images are scaled down to this at their printed size


def banner_text(analysis: dict) -> str:
    """The words at the top of every page."""
    demo = " — phantom-trained demo models" if analysis.get("demo_model") else ""
    return f"NOT FOR CLINICAL USE — research software{demo}"


def patient_lines(analysis: dict) -> tuple[str, str]:
    """The two header lines of every page: who (or that the identity was removed or never known), which study."""
    patient, study = analysis.get("patient") or {}, analysis.get("study") or {}
    if patient.get("anonymised"):
        who = "Patient: anonymised"
    elif patient.get("name") or patient.get("id"):
        who = f"Patient: {patient.get('name') or '–'}   ID {patient.get('id') or '–'}   born {patient.get('birth_date') or '–'}"
    else:
        who = "Patient: not recorded in the input (a volume file carries no patient data)"
    who += f"   sex {patient.get('sex') or '–'}"
    which = (f"Study {study.get('date') or '–'}   accession {study.get('accession_number') or '–'}   "
             f"series {study.get('series_description') or '–'}   scan {Path(analysis['input']['path']).name}")
    return who, which


@dataclass
class Block:
    """Something drawn on a page: its height in inches and how to draw it with its top at `y` inches."""
    height: float
    draw: Callable[[plt.Figure, float], None]
    keep_with_next: bool = False  # a heading never ends a page


def _text(fig, x: float, y: float, text: str, **kw) -> None:
    """Text at (x, y) inches from the page's top-left corner."""
    fig.text(x / PAGE_W, 1 - y / PAGE_H, text, va="top", **kw)


def _hline(fig, y: float, colour: str = "#999", width: float = 0.6) -> None:
    fig.add_artist(plt.Line2D([MARGIN / PAGE_W, 1 - MARGIN / PAGE_W], [1 - y / PAGE_H] * 2, color=colour, lw=width))


def heading(text: str) -> Block:
    return Block(0.42, lambda fig, y: _text(fig, MARGIN, y + 0.08, text, fontsize=13, weight="bold"), True)


def paragraph(text: str, colour: str = "#222", bold: bool = False, indent: float = 0.0) -> Block:
    lines = textwrap.wrap(text, int((CHARS_PER_LINE - indent * 15) * (0.85 if bold else 1.0))) or [""]

    def draw(fig, y):
        _text(fig, MARGIN + indent, y, "\n".join(lines), fontsize=9, color=colour, linespacing=1.35,
              weight="bold" if bold else "normal")
    return Block(LINE * len(lines) + 0.06, draw)


def table(title: str, rows: list[tuple[str, str]], header: tuple[str, ...] | None = None) -> Block:
    """A titled two-or-more-column table, one block (never split across pages)."""
    body = ([header] if header else []) + [tuple(r) for r in rows]
    columns = len(body[0])
    widths = [0.42 * BODY_W] + [0.58 * BODY_W / (columns - 1)] * (columns - 1)
    cells = [[textwrap.wrap(str(text), int(width * 15)) or [""] for text, width in zip(row, widths)] for row in body]
    heights = [ROW + (max(len(c) for c in row) - 1) * 0.15 for row in cells]

    def draw(fig, y):
        _text(fig, MARGIN, y, title, fontsize=10, weight="bold")
        top = y + 0.28
        _hline(fig, top, "#666", 0.8)
        for n, (row, height) in enumerate(zip(cells, heights)):
            x = MARGIN
            for lines, width in zip(row, widths):
                _text(fig, x + 0.05, top + 0.05, "\n".join(lines), fontsize=8.5, linespacing=1.25,
                      weight="bold" if n == 0 and header else "normal")
                x += width
            top += height
            _hline(fig, top, "#ccc", 0.5)
    return Block(0.28 + sum(heights) + 0.18, draw)


def image(png: bytes, caption: str) -> Block:
    """A PNG at the body width (or smaller, to fit one page) and at most PRINT_DPI, its caption above."""
    picture = Image.open(bytes_io.BytesIO(png))
    picture.thumbnail((int(BODY_W * PRINT_DPI), int((BOTTOM - TOP) * PRINT_DPI)), Image.LANCZOS)
    pixels = np.asarray(picture.convert("RGB"))  # no alpha: a soft mask would double the file
    height, width = pixels.shape[:2]
    w = BODY_W
    h = w * height / width
    room = BOTTOM - TOP - 0.45
    if h > room:
        w, h = w * room / h, room

    def draw(fig, y):
        _text(fig, MARGIN, y, caption, fontsize=9, weight="bold")
        ax = fig.add_axes([(MARGIN + (BODY_W - w) / 2) / PAGE_W, 1 - (y + 0.3 + h) / PAGE_H, w / PAGE_W, h / PAGE_H])
        ax.imshow(pixels, interpolation="none")  # embedded as is, not resampled at the figure's dpi
        ax.set_axis_off()
    return Block(h + 0.45, draw)


def paginate(heights: list[float], keep: list[bool] | None = None, room: float = BOTTOM - TOP) -> list[int]:
    """Page index of each block: blocks flow down in order, one that would cross the page's end starts the next
    page (a block taller than a page gets a page of its own); a block kept with the next moves with it."""
    keep = keep or [False] * len(heights)
    pages, page, used = [], 0, 0.0
    for n, h in enumerate(heights):
        needed = h + (heights[n + 1] if keep[n] and n + 1 < len(heights) else 0.0)
        if used > 0 and used + needed > room:
            page, used = page + 1, 0.0
        pages.append(page)
        used += h
    return pages


def _measurements(hip: dict) -> list[tuple[str, str]]:
    volumes = hip.get("volumes_ml") or {}
    rows = [("femoral head radius", f"{hip['radius_mm']:.1f} mm"), ("femoral head volume", f"{volumes['head']:.1f} ml"),
            ("necrotic lesion volume", f"{volumes['necrosis']:.2f} ml"),
            ("lesion share of the head", percent_text(hip["necrotic_ratio"]))]
    if hip.get("necrotic_angle_deg") is not None:
        rows.append(("necrotic angle", f"{hip['necrotic_angle_deg']:.0f}°"))
    rows += [(grade, origin) for grade, origin in grade_lines(hip)]
    if hip.get("sranet"):
        rows.append(("SRANet probability of necrosis", probability_text(hip["sranet"]["probability"])))
    risk = hip.get("risk")
    if risk:
        rows += [(f"collapse within {h // 12} year{'s' if h > 12 else ''}", collapse_text(risk, str(h)))
                 for h in HORIZONS]
        rows += [("risk compared with the training cohort", risk_reference_text(risk)),
                 ("what the intervals cover", interval_note(risk))]
        rows.append(("grades used for the risk", ", ".join(f"{k} {v}" for k, v in risk["grades_used"].items())
                     + f" ({risk['grades_source']})"))
    elif hip.get("risk_note"):
        rows.append(("collapse risk", hip["risk_note"]))
    return rows


def blocks(analysis: dict, images: list[tuple[str, bytes]]) -> list[Block]:
    """Everything the report says, in reading order: key findings, warnings, measurements, images, details."""
    source = analysis["input"]
    out = [heading("ONFH Assist report"),
           paragraph(f"{source['modality']} scan, {' x '.join(map(str, source['size']))} voxels of "
                     f"{' x '.join(f'{s:.2f}' for s in source['spacing_mm'])} mm. Right hip first; sides are the "
                     "patient's."),
           heading("Key findings")]
    for finding in sorted(key_findings(analysis), key=lambda f: f["side"] != "R"):
        colour = FLAG_COLOURS.get(finding["flag"], "#222")
        out.append(paragraph(finding["sentence"], colour, bold=True))
        if finding.get("confidence"):
            out.append(paragraph(finding["confidence"], indent=0.2))
    if analysis["warnings"]:
        out.append(heading("Warnings"))
        out += [paragraph("• " + w, "#8a5a00") for w in analysis["warnings"]]
    out.append(heading("Measurements"))
    for hip in sorted(analysis["hips"], key=lambda h: h["side"] != "R"):
        name = "Right hip" if hip["side"] == "R" else "Left hip"
        if hip["found"]:
            out.append(table(name, _measurements(hip)))
        else:
            out.append(paragraph(f"{name}: not analysed — {hip['reason']}.", bold=True))
    if images:
        out.append(heading("Key images"))
        out += [image(png, caption) for caption, png in images]
    models = [(m["task"], m["name"], m["version"], m["sha256"][:16] + "…") for m in analysis["models"]]
    out.append(heading("Technical details"))
    out.append(table("Models", models, ("task", "name", "version", "sha256")))
    timing = analysis["timings_s"].get("total")
    out.append(paragraph(f"onfh {__version__}, device {analysis['device']['device']}"
                         + (f", {timing:.1f} s" if timing is not None else "")
                         + f"; schema {analysis['schema_version']}; PDF written "
                         f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC."))
    return out


def _frame(fig, analysis: dict, page: int, pages: int) -> None:
    """Banner, patient header and page number: on every page."""
    fig.add_artist(plt.Rectangle((MARGIN / PAGE_W, 1 - 0.75 / PAGE_H), BODY_W / PAGE_W, 0.36 / PAGE_H,
                                 color="#b00020", transform=fig.transFigure))
    _text(fig, MARGIN + 0.12, 0.47, banner_text(analysis), fontsize=10, color="white", weight="bold")
    who, which = patient_lines(analysis)
    _text(fig, MARGIN, 0.86, who, fontsize=8.5, weight="bold")
    _text(fig, MARGIN, 1.08, which, fontsize=8)
    _hline(fig, 1.32, "#444", 0.8)
    _text(fig, PAGE_W - MARGIN, BOTTOM + 0.12, f"page {page} of {pages}", fontsize=8, ha="right", color="#555")
    _text(fig, MARGIN, BOTTOM + 0.12, "ONFH Assist", fontsize=8, color="#555")


def write_pdf(analysis: dict, path: str | Path, images: list[tuple[str, bytes]] = ()) -> Path:
    """Lay the report out on A4 pages and write it atomically; `images` are (caption, PNG bytes)."""
    content = blocks(analysis, list(images))
    placement = paginate([b.height for b in content], [b.keep_with_next for b in content])
    pages = placement[-1] + 1
    path = Path(path)
    with atomic_path(path) as tmp, PdfPages(tmp, metadata={"Title": "ONFH Assist report",
                                                           "Creator": f"onfh {__version__}"}) as pdf:
        for page in range(pages):
            fig = plt.figure(figsize=(PAGE_W, PAGE_H))
            _frame(fig, analysis, page + 1, pages)
            y = TOP
            for block, where in zip(content, placement):
                if where == page:
                    block.draw(fig, y)
                    y += block.height
            pdf.savefig(fig)
            plt.close(fig)
    return path
