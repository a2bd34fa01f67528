"""One analysis at a time per server: an `onfh analyze --progress jsonl` child (`jobs.Job`), its events folded
into what the page shows (fraction, stage line, log), cancellable as a process tree. Pure Python, no trame, so
it is tested with a real child and no browser."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import jobs
from ..atomic import atomic_path
from ..imaging.io import VOLUME_SUFFIXES, volume_suffix

LOG_LINES = 200


@dataclass
class Run:
    """The current (or last) analysis: its folder, its child, and what the page shows of it."""
    image: Path
    out: Path
    job: jobs.Job
    fraction: float = 0.0
    stage: str = ""
    log: list[str] = field(default_factory=list)
    error: str = ""
    cancelled: bool = False

    @property
    def running(self) -> bool:
        return self.job.poll() is None

    def update(self) -> bool:
        """Fold the child's new events in; True once the child has ended (results or error ready to show)."""
        self._fold(self.job.drain())
        code = self.job.poll()
        if code is None:
            return False
        self.job.wait(timeout=5)
        self._fold(self.job.drain())  # the lines read between the last drain and the end
        if code != 0 and not self.cancelled and not self.error:
            self.error = self.job.error_message or f"the analysis stopped (exit code {code})."
        if code == 0:
            self.fraction = 1.0
        return True

    def _fold(self, events: list[dict]) -> None:
        for event in events:
            kind = event.get("event")
            if kind == "progress":
                self.fraction = float(event.get("fraction", self.fraction))
                self.stage = " ".join(str(event.get(k, "")) for k in ("stage", "message")).strip()
            elif kind in ("log", "error") and event.get("message"):
                self.log = (self.log + [str(event["message"])])[-LOG_LINES:]
                if kind == "error":
                    self.error = str(event["message"])

    @property
    def succeeded(self) -> bool:
        return self.job.poll() == 0 and (self.out / "analysis.json").is_file()

    def cancel(self) -> None:
        self.cancelled = True
        self.job.cancel()


def start(image: Path, root: Path, modality: str = "auto", sides: str = "both") -> Run:
    """Start `onfh analyze IMAGE` into a new folder under `root` (a GPU when the child finds one: the server
    renders through Mesa on the CPU and does not need it)."""
    out = jobs.analysis_folder(Path(image).name.split(".")[0], root)
    args = jobs.analyze_args(Path(image), out, modality=modality, sides=sides)
    return Run(image=Path(image), out=out, job=jobs.Job(jobs.onfh_command(args), env=jobs.child_env()).start())


def save_upload(folder: Path, name: str, content: bytes | list[bytes]) -> Path:
    """An uploaded scan saved whole under `folder` (a half-received file is never analysed); ValueError, with
    the sentence the page shows, for anything but one volume file."""
    name = Path(str(name)).name
    if not volume_suffix(name):
        raise ValueError(f"{name or 'the upload'}: upload one volume file ({', '.join(VOLUME_SUFFIXES)}).")
    with atomic_path(folder / name) as tmp:
        Path(tmp).write_bytes(b"".join(content) if isinstance(content, list) else content)
    return folder / name
