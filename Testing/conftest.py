"""Test-suite setup: helper modules in Testing/ are importable, and plotting never needs a display."""
import os
import sys
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hypothesis import settings  # noqa: E402

# The same examples on every run, so CI cannot fail on a case no one has seen locally.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.load_profile("deterministic")
