"""Head centres for a case added from the command line without them (`onfh dataset add`), found the way
`onfh analyze` finds them (localiser candidates, segmentation, anatomical checks, sphere fit), so that
training can crop the hip as the panel's *Add to training dataset* does with the centres of its analysis."""
from __future__ import annotations

from pathlib import Path

from ..analysis.hipfinder import find_and_segment
from ..dataset import check_label
from ..devices import resolve_device
from ..errors import InputError
from ..imaging import io
from ..imaging.modality import check_modality
from ..models.networks import load

CENTRE_KEYS = ("head_x", "head_y", "head_z")


def missing_centres(rows: list[dict]) -> list[str]:
    """The sides of `rows` that lack any of head_x, head_y, head_z."""
    return [r["side"] for r in rows if any(r.get(k, "") == "" for k in CENTRE_KEYS)]


def fill_centres(image_path: str | Path, label_path: str | Path | None, rows: list[dict],
                 device: str = "auto") -> list[str]:
    """Write the found head centre (LPS mm) into every row that lacks one; returns the sides filled. The scan and
    its label map are checked first (bad input is one sentence before any model runs); a hip the finder cannot
    find is refused naming the reason and how to give the centre instead."""
    sides = missing_centres(rows)
    if not sides:
        return []
    image = io.read_image(image_path)
    io.check_hip_extent(image.GetSize(), image.GetSpacing(), str(image_path))
    if label_path:
        check_label(io.read_image(label_path), image, str(label_path))
    modality, _, _ = check_modality(image, image_path, "auto")
    torch_device = resolve_device(device)
    localizer, _ = load("localizer", None, torch_device)
    segmenter, _ = load("segmentation", None, torch_device)
    try:
        findings, _ = find_and_segment(localizer, segmenter, image, modality, torch_device, tuple(sides))
    except (RuntimeError, ValueError) as exc:  # e.g. too few voxels for the localiser's grid
        raise InputError(f"{image_path}: the head centres could not be found ({str(exc).splitlines()[0][:100]}); "
                         "give them as head_x=…,head_y=…,head_z=… (LPS mm) in --side.") from None
    found = {f.estimate.side: f.estimate for f in findings}
    for row in rows:
        if row["side"] not in sides:
            continue
        estimate = found[row["side"]]
        if not estimate.found:
            raise InputError(f"--side {row['side']}: no head centre was given and none was found in {image_path} "
                             f"({estimate.reason}); give it as head_x=…,head_y=…,head_z=… (LPS mm).")
        row.update({k: f"{v:.2f}" for k, v in zip(CENTRE_KEYS, estimate.center_lps)})
    return sides
