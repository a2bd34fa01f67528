"""Volume I/O and geometry with SimpleITK.

Everything here works in physical LPS millimetres, so results never depend on how a scanner stored
its voxels. Mirroring is done on the geometry (a reflected direction matrix), never by flipping
arrays, which keeps it exact for oblique and anisotropic grids: mirror twice is the identity.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from ..atomic import atomic_path
from ..errors import InputError

log = logging.getLogger(__name__)

# ITK prints its own warnings to stderr (e.g. "No Series were found"); we report problems ourselves.
sitk.ProcessObject_SetGlobalWarningDisplay(False)

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
MAX_VOXELS = 1024**3 // 2  # 512 M voxels: larger than any hip scan, small enough to refuse absurd headers
MAX_DIM = 4096
MIN_DIM = 4
MIN_EXTENT_MM = 60.0  # a femoral head is 40-55 mm across: a scan narrower than this on any axis cannot hold one
ORTHONORMAL_TOL = 1e-3  # direction cosines are stored to ~1e-6; a larger skew is a broken header, not rounding
SLICE_GAP_LIMIT = 1.5  # a DICOM slice gap above this many median spacings means missing slices: refused
SLICE_GAP_WARN = 0.01  # a relative spread of slice spacings above this is warned about
META_TYPES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
              "MET_LONG": 8, "MET_ULONG": 8, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8}
REFLECT_X = np.diag([-1.0, 1.0, 1.0])


def volume_suffix(path: str | Path) -> str:
    """The file type suffix ('.nii.gz' counts as one), or '' for a folder or unknown type."""
    name = str(path).lower()
    return next((s for s in VOLUME_SUFFIXES if name.endswith(s)), "")


def read_image(path: str | Path) -> sitk.Image:
    """Read a 3D scalar volume (NIfTI, NRRD, MHA/MHD or a DICOM series folder), validated."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder.")
    if path.is_dir():
        image = _read_dicom_series(path)
    else:
        image = _read_file(path)
    check_image(image, str(path))
    return image


def _header(path: Path) -> sitk.ImageFileReader:
    """A reader with the file's header read and checked (size, type, geometry); no voxel data read yet."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise InputError(f"{path}: not a readable image file (unknown format or damaged header).") from None
    _check_header(path, reader.GetDimension(), reader.GetSize(), reader.GetNumberOfComponents())
    _check_geometry(str(path), reader.GetSpacing(), reader.GetDirection())
    return reader


def _read_file(path: Path) -> sitk.Image:
    reader = _header(path)
    _check_gzip(path)
    if path.suffix.lower() in (".mha", ".mhd"):
        _check_meta_data_file(path)
    try:
        return reader.Execute()
    except RuntimeError:
        raise InputError(f"{path}: the image data could not be read (truncated or corrupt file).") from None


def _series_files(folder: Path) -> tuple[str, ...]:
    """The slice files of the folder's one DICOM series, in slice order."""
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise InputError(f"{folder}: the folder holds no DICOM series.")
    if len(series) > 1:
        raise InputError(f"{folder}: the folder holds {len(series)} DICOM series; put one series per folder.")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series[0])
    _check_left_out(folder, files)
    return files


def _is_dicom_file(path: Path) -> bool:
    """A DICOM Part 10 file: 'DICM' after the 128-byte preamble (DICOMDIR, an index, is not a slice)."""
    if path.name.upper() == "DICOMDIR" or not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(132)[128:] == b"DICM"


def _check_left_out(folder: Path, files: Sequence[str]) -> None:
    """GDCM silently leaves out a slice it cannot parse (e.g. truncated pixel data); at the top or bottom of the
    series no gap shows it, so every DICOM file in the folder must be one of the series' slices."""
    listed = {Path(name).resolve() for name in files}
    left_out = sorted(p.name for p in folder.iterdir() if p.resolve() not in listed and _is_dicom_file(p))
    if left_out:
        raise InputError(f"{folder}: {len(left_out)} DICOM file(s) could not be read as slices of the series "
                         f"(damaged or truncated, e.g. {left_out[0]}); repair or remove them.")


def _read_dicom_series(folder: Path) -> sitk.Image:
    files = _series_files(folder)
    if len(files) < MIN_DIM:
        raise InputError(f"{folder}: the DICOM series has only {len(files)} slices; a 3D volume is needed.")
    _check_slice_spacing(folder, files)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        return reader.Execute()
    except RuntimeError:
        raise InputError(f"{folder}: the DICOM series could not be read (corrupt or inconsistent slices).") from None


def dicom_tags(path: str | Path) -> dict[str, str]:
    """Tags ('gggg|eeee' -> value) of the first slice of a DICOM series folder, or {} for a volume file,
    which keeps none: the acquisition (echo time, inversion, description) says which MR sequence it is."""
    path = Path(path)
    if not path.is_dir():
        return {}
    reader = sitk.ImageFileReader()
    reader.SetFileName(_series_files(path)[0])
    reader.ReadImageInformation()
    return {key: reader.GetMetaData(key).strip() for key in reader.GetMetaDataKeys()}


def _check_header(path: Path, dim: int, size: Sequence[int], components: int) -> None:
    if dim != 3:
        raise InputError(f"{path}: a 3D volume is needed but the file is {dim}D.")
    if components != 1:
        raise InputError(f"{path}: a scalar volume is needed but each voxel has {components} components.")
    if max(size) > MAX_DIM or int(np.prod(size, dtype=np.int64)) > MAX_VOXELS:
        raise InputError(f"{path}: the header claims an absurd size {tuple(size)}.")


def check_image(image: sitk.Image, name: str = "image") -> None:
    """Raise InputError unless the image is a finite 3D scalar volume with sane geometry."""
    _check_header(Path(name), image.GetDimension(), image.GetSize(), image.GetNumberOfComponentsPerPixel())
    if min(image.GetSize()) < MIN_DIM:
        raise InputError(f"{name}: the volume is too small {image.GetSize()}; at least {MIN_DIM} voxels per axis are needed.")
    _check_geometry(name, image.GetSpacing(), image.GetDirection())
    if not np.all(np.isfinite(image.GetOrigin())):
        raise InputError(f"{name}: the origin is not finite.")
    array = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise InputError(f"{name}: the volume contains NaN or infinite voxels.")


def _check_geometry(name: str, spacing: Sequence[float], direction: Sequence[float]) -> None:
    """Zero or negative spacing and a singular or skewed direction matrix put every millimetre in the wrong place."""
    spacing = np.asarray(spacing, float)
    if np.any(spacing == 0):
        raise InputError(f"{name}: zero spacing {tuple(spacing.tolist())}: a voxel axis has no length.")
    if not np.all(np.isfinite(spacing)) or np.any(spacing < 0):
        raise InputError(f"{name}: voxel spacing {tuple(spacing.tolist())} must be positive.")
    matrix = np.asarray(direction, float).reshape(3, 3)
    if not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix)) < 1e-3:
        raise InputError(f"{name}: the direction matrix is singular.")
    skew = float(np.abs(matrix.T @ matrix - np.eye(3)).max())
    if skew > ORTHONORMAL_TOL:
        raise InputError(f"{name}: the direction matrix is not orthonormal (off by {skew:.3g}, "
                         f"tolerance {ORTHONORMAL_TOL:g}); the header's geometry is broken.")


def check_hip_extent(size: Sequence[int], spacing: Sequence[float], name: str) -> None:
    """Refuse a field of view narrower than MIN_EXTENT_MM on any axis: no femoral head fits in it."""
    extent = np.asarray(size, float) * np.asarray(spacing, float)
    if extent.min() < MIN_EXTENT_MM:
        shown = " x ".join(f"{e:.0f}" for e in extent)
        raise InputError(f"{name}: the volume covers only {shown} mm, too small to hold a hip "
                         f"(at least {MIN_EXTENT_MM:.0f} mm on every axis is needed).")


def check_scan(path: str | Path) -> None:
    """Before any model is loaded: is the scan there, and (from a file's header) large enough to hold a hip?
    A DICOM folder is checked after it is read (`pipeline`, `hipfinder`), not read twice."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder.")
    if path.is_dir():
        return
    reader = _header(path)
    check_hip_extent(reader.GetSize(), reader.GetSpacing(), str(path))


def _check_gzip(path: Path) -> None:
    """Read a gzip stream to its end: ITK fills a truncated one with zeros without a word; gzip checks CRC and length."""
    with open(path, "rb") as f:
        if f.read(2) != b"\x1f\x8b":
            return
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 22):
                pass
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputError(f"{path}: the compressed data is truncated or corrupt ({exc}).") from None


def _meta_header(path: Path) -> tuple[dict[str, str], int]:
    """A MetaImage header as key -> value, and its length in bytes (it ends with the ElementDataFile line)."""
    fields, length = {}, 0
    with open(path, "rb") as f:
        for raw in f:
            length += len(raw)
            key, eq, value = raw.decode("latin-1").partition("=")
            if eq:
                fields[key.strip()] = value.strip()
            if key.strip() == "ElementDataFile":
                break
    return fields, length


def _check_meta_data_file(path: Path) -> None:
    """An .mha/.mhd whose voxel data is missing or short: say which file, before ITK prints its own lines."""
    fields, header_length = _meta_header(path)
    data_name = fields.get("ElementDataFile", "")
    if not data_name or data_name.startswith("LIST") or "%" in data_name:
        return  # a slice list or pattern: ITK checks it
    local = data_name == "LOCAL"
    data_file = path if local else path.parent / data_name
    if not data_file.is_file():
        raise InputError(f"{path}: its data file {data_file} is missing.")
    if fields.get("CompressedData", "False").lower() == "true" or fields.get("ElementType") not in META_TYPES:
        return
    dims = [int(v) for v in fields.get("DimSize", "0").split()]
    channels = int(fields.get("ElementNumberOfChannels", "1"))
    needed = int(np.prod(dims, dtype=np.int64)) * channels * META_TYPES[fields["ElementType"]]
    have = data_file.stat().st_size - (header_length if local else 0)
    if have < needed:
        raise InputError(f"{path}: its data file {data_file} is short ({have} of {needed} bytes).")


def _slice_positions(files: Sequence[str]) -> np.ndarray:
    """Each slice's position along the slice normal (mm), from ImagePositionPatient and ImageOrientationPatient."""
    reader = sitk.ImageFileReader()
    positions = []
    for name in files:
        reader.SetFileName(name)
        reader.ReadImageInformation()
        positions.append(np.array(reader.GetOrigin()))
    direction = np.array(reader.GetDirection()).reshape(3, 3)
    normal = np.cross(direction[:, 0], direction[:, 1])
    return np.array(positions) @ normal


def _check_slice_spacing(folder: Path, files: Sequence[str]) -> None:
    """Missing slices make ITK stretch the volume silently: warn on uneven spacing, refuse a gap > 1.5 slices."""
    try:
        gaps = np.abs(np.diff(np.sort(_slice_positions(files))))
    except RuntimeError:
        return  # an unreadable slice: the series read below reports it
    median = float(np.median(gaps))
    if median <= 0:
        raise InputError(f"{folder}: the DICOM series has slices at the same position (duplicates or mixed series).")
    worst = float(gaps.max())
    if worst > SLICE_GAP_LIMIT * median:
        raise InputError(f"{folder}: the DICOM series has a gap of {worst:.2f} mm between slices where the usual "
                         f"spacing is {median:.2f} mm (more than {SLICE_GAP_LIMIT} slices: slices are missing).")
    if (worst - float(gaps.min())) > SLICE_GAP_WARN * median:
        log.warning("%s: DICOM slice spacing varies from %.3f to %.3f mm; the volume is resampled as if even.",
                    folder, float(gaps.min()), worst)


def write_image(image: sitk.Image, path: str | Path, compress: bool = True) -> Path:
    """Write atomically: a temporary file beside the target, then a rename, so no reader sees half a file."""
    path = Path(path)
    suffix = volume_suffix(path)
    if not suffix:
        raise InputError(f"{path}: unsupported output type; use one of {', '.join(VOLUME_SUFFIXES)}.")
    with atomic_path(path, suffix) as tmp:
        sitk.WriteImage(image, tmp, compress)
    return path


def write_dicom_series(image: sitk.Image, folder: str | Path, modality: str = "CT") -> Path:
    """Write an integer volume as a minimal DICOM series (one file per slice), e.g. to test DICOM input."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.Cast(image, sitk.sitkInt16)
    direction = image.GetDirection()
    series_uid = "1.2.826.0.1.3680043.2.1125." + str(int(hashlib.sha1(str(folder).encode()).hexdigest(), 16) % 10**12)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        slice_ = image[:, :, k]
        tags = {
            "0008|0060": modality,
            "0020|000e": series_uid,
            "0020|0032": "\\".join(f"{v:.6f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))),
            "0020|0037": "\\".join(f"{v:.6f}" for v in direction[0::3] + direction[1::3]),
            "0020|0013": str(k + 1),
            "0028|0030": f"{image.GetSpacing()[1]:.6f}\\{image.GetSpacing()[0]:.6f}",
            "0018|0050": f"{image.GetSpacing()[2]:.6f}",
            "0008|0018": f"{series_uid}.{k + 1}",
        }
        for tag, value in tags.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:04d}.dcm"))
        writer.Execute(slice_)
    return folder


def orientation_code(image: sitk.Image) -> str:
    """Three-letter orientation of the voxel axes, e.g. 'LPS' or 'RAS' (closest for oblique grids)."""
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())


def describe(image: sitk.Image) -> dict:
    """Summary a user sees: size, spacing, orientation, origin and intensity range."""
    array = sitk.GetArrayViewFromImage(image)
    return {
        "size": list(image.GetSize()),
        "spacing_mm": [round(s, 6) for s in image.GetSpacing()],
        "orientation": orientation_code(image),
        "origin_lps": [round(o, 4) for o in image.GetOrigin()],
        "intensity_range": [float(array.min()), float(array.max())],
    }


def grid_reference(center_lps: Sequence[float], size_mm: float | Sequence[float], spacing_mm: float | Sequence[float]) -> sitk.Image:
    """An empty axis-aligned (identity direction) grid whose physical centre is `center_lps`."""
    size_mm = np.broadcast_to(np.asarray(size_mm, float), (3,))
    spacing = np.broadcast_to(np.asarray(spacing_mm, float), (3,))
    size = np.maximum(np.round(size_mm / spacing).astype(int), 1)
    origin = np.asarray(center_lps, float) - (size - 1) * spacing / 2.0
    ref = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    ref.SetSpacing([float(s) for s in spacing])
    ref.SetOrigin([float(o) for o in origin])
    return ref


def resample_to(image: sitk.Image, reference: sitk.Image, label: bool = False, default: float = 0.0) -> sitk.Image:
    """Resample onto another grid; labels use nearest neighbour so values stay labels."""
    interpolator = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    return sitk.Resample(image, reference, sitk.Transform(), interpolator, default, image.GetPixelID())


def resample_spacing(image: sitk.Image, spacing_mm: float | Sequence[float], label: bool = False) -> sitk.Image:
    """Resample to a new spacing, keeping origin and direction and covering the same extent."""
    spacing = np.broadcast_to(np.asarray(spacing_mm, float), (3,))
    extent = np.array(image.GetSize()) * np.array(image.GetSpacing())
    size = np.maximum(np.round(extent / spacing).astype(int), 1)
    ref = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    ref.SetSpacing([float(s) for s in spacing])
    ref.SetOrigin(image.GetOrigin())
    ref.SetDirection(image.GetDirection())
    return resample_to(image, ref, label=label, default=_background(image, label))


def crop_box(image: sitk.Image, center_lps: Sequence[float], size_mm: float | Sequence[float],
             spacing_mm: float | Sequence[float], label: bool = False, default: float | None = None,
             mirror_x: float | None = None) -> sitk.Image:
    """Resample a physical box centred on a point onto an axis-aligned grid; outside the scan is padded.
    With `mirror_x` the box is that of `mirror(image, mirror_x)`: its grid is reflected instead of the image,
    so a large scan is never copied (`mirror` copies the voxels)."""
    ref = grid_reference(center_lps, size_mm, spacing_mm)
    fill = _background(image, label) if default is None else default
    if mirror_x is None:
        return resample_to(image, ref, label=label, default=fill)
    crop = resample_to(image, mirror(ref, mirror_x), label=label, default=fill)
    crop.CopyInformation(ref)
    return crop


def _background(image: sitk.Image, label: bool) -> float:
    """Padding value: 0 for labels, the darkest voxel for intensities (air on CT, background on MR)."""
    if label:
        return 0.0
    return float(sitk.GetArrayViewFromImage(image).min())


def points_inside(image: sitk.Image, points_lps: np.ndarray) -> np.ndarray:
    """Which of the (n, 3) LPS points lie in the scanned volume: within half a voxel of the grid, the edge
    half-open as ITK's interpolators take it."""
    to_index = np.linalg.inv(np.array(image.GetDirection()).reshape(3, 3) @ np.diag(image.GetSpacing()))
    index = (np.asarray(points_lps, float) - np.asarray(image.GetOrigin())) @ to_index.T
    return ((index >= -0.5) & (index < np.asarray(image.GetSize()) - 0.5)).all(1)


def inside(image: sitk.Image, point_lps: Sequence[float]) -> bool:
    """Whether a point lies in the scanned volume (a one-hip view leaves the other head out of it)."""
    return bool(points_inside(image, np.asarray(point_lps, float)[None])[0])


def mirror_point(point_lps: Sequence[float], plane_x: float) -> np.ndarray:
    """Reflect a point about the sagittal plane x = plane_x (LPS x runs right to left)."""
    p = np.asarray(point_lps, float).copy()
    p[0] = 2.0 * plane_x - p[0]
    return p


def mirror(image: sitk.Image, plane_x: float) -> sitk.Image:
    """Mirror an image about the sagittal plane x = plane_x by reflecting its geometry (voxels untouched).

    A left hip mirrored this way looks like a right hip to every model; mirroring the result again
    puts it back exactly, because the same reflection applied twice is the identity.
    """
    out = sitk.Image(image)
    direction = REFLECT_X @ np.array(image.GetDirection()).reshape(3, 3)
    out.SetDirection([float(v) for v in direction.ravel()])
    out.SetOrigin([float(v) for v in mirror_point(image.GetOrigin(), plane_x)])
    return out


def canonical(image: sitk.Image) -> sitk.Image:
    """Permute/flip voxel axes so the grid is (nearest to) LPS; geometry is preserved exactly."""
    return sitk.DICOMOrient(image, "LPS")


def physical_to_index(image: sitk.Image, point_lps: Sequence[float]) -> np.ndarray:
    """Continuous (x, y, z) voxel index of a physical point."""
    return np.array(image.TransformPhysicalPointToContinuousIndex([float(v) for v in point_lps]))


def index_to_physical(image: sitk.Image, index_xyz: Sequence[float]) -> np.ndarray:
    """Physical LPS point of a continuous (x, y, z) voxel index."""
    return np.array(image.TransformContinuousIndexToPhysicalPoint([float(v) for v in index_xyz]))


def index_box(reference: sitk.Image, points) -> tuple[np.ndarray, np.ndarray]:
    """Index start and size of the part of `reference` that holds the physical points (one voxel of margin);
    a size of 0 or less on an axis means the points lie outside."""
    idx = np.array([physical_to_index(reference, p) for p in points])
    lo = np.clip(np.floor(idx.min(0)).astype(int) - 1, 0, None)
    hi = np.minimum(np.ceil(idx.max(0)).astype(int) + 2, np.array(reference.GetSize()))
    return lo, hi - lo


def voxel_volume_ml(image: sitk.Image) -> float:
    """Volume of one voxel in millilitres."""
    return float(np.prod(image.GetSpacing())) / 1000.0
