"""Test-suite setup: helper modules in Testing/ are importable, and plotting never needs a display."""
import os
import sys
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(Path(__file__).resolve().parent))
