"""Draw the extension and module icons (128×128 PNG) from code, so they can be regenerated and reviewed.

    python Resources/make_icons.py

The extension icon is a coronal femoral head in its acetabular cup with an anterosuperior necrotic
wedge; the training module's icon adds a learning-curve badge.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
SIZE = 128
SCALE = 4  # draw large, then downsample: smooth edges without an anti-aliasing library
BONE, CORTEX, LESION, CUP, BACKGROUND = (236, 226, 200), (120, 98, 70), (214, 48, 49), (96, 125, 160), (28, 42, 64)


def _box(cx, cy, r):
    return [SCALE * (cx - r), SCALE * (cy - r), SCALE * (cx + r), SCALE * (cy + r)]


def _femur(draw: ImageDraw.ImageDraw) -> None:
    """Head, neck and shaft of a right femur in coronal view, with the cup above the head."""
    s = SCALE
    draw.rounded_rectangle([0, 0, s * SIZE - 1, s * SIZE - 1], radius=s * 22, fill=BACKGROUND)
    draw.arc(_box(52, 50, 34), start=160, end=20, fill=CUP, width=s * 8)
    neck = [(46, 64), (62, 44), (90, 76), (72, 90)]
    draw.polygon([(s * x, s * y) for x, y in neck], fill=BONE, outline=CORTEX, width=s * 3)
    draw.rounded_rectangle([s * 70, s * 72, s * 92, s * 124], radius=s * 6, fill=BONE, outline=CORTEX, width=s * 3)
    draw.ellipse(_box(52, 50, 25), fill=BONE, outline=CORTEX, width=s * 3)
    draw.pieslice(_box(52, 50, 22), start=200, end=300, fill=LESION)


def _badge(draw: ImageDraw.ImageDraw) -> None:
    """A small falling learning curve in the lower-left corner."""
    s = SCALE
    draw.rounded_rectangle([s * 6, s * 80, s * 56, s * 122], radius=s * 6, fill=(250, 250, 250), outline=CORTEX, width=s * 2)
    points = [(12, 88), (20, 104), (30, 110), (40, 113), (50, 114)]
    draw.line([(s * x, s * y) for x, y in points], fill=(30, 120, 200), width=s * 4, joint="curve")


def draw_icon(with_badge: bool = False) -> Image.Image:
    image = Image.new("RGBA", (SIZE * SCALE, SIZE * SCALE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    _femur(draw)
    if with_badge:
        _badge(draw)
    return image.resize((SIZE, SIZE), Image.LANCZOS)


def main() -> None:
    assist, training = draw_icon(), draw_icon(with_badge=True)
    assist.save(ROOT / "ONFHAssist.png")
    assist.save(ROOT / "ONFHAssist" / "Resources" / "Icons" / "ONFHAssist.png")
    training.save(ROOT / "ONFHTraining" / "Resources" / "Icons" / "ONFHTraining.png")


if __name__ == "__main__":
    main()
