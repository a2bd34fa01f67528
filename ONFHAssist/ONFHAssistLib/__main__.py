"""`python -m ONFHAssistLib ...` is the same as `onfh ...` (Slicer runs it this way)."""
import sys

from .cli import main

sys.exit(main())
