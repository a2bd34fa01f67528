"""Atomic file writes: write beside the target, then rename, so no reader ever sees half a file."""
from __future__ import annotations

import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _file_mode() -> int:
    """Permissions a normally created file gets (mkstemp's 0600 would hide outputs from other users)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[str]:
    """Yield a temporary path in the target's folder; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix if suffix is None else suffix, dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text atomically (flushed to disk before the rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def json_safe(value):
    """NaN and infinities become null: strict JSON readers (browsers, jq, other languages) refuse them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def atomic_write_json(path: str | Path, value) -> None:
    """Write strict, indented JSON atomically (an undefined metric is null, not NaN)."""
    atomic_write_text(path, json.dumps(json_safe(value), indent=2, allow_nan=False) + "\n")
