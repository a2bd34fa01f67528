"""ONFH Assist Web: the conference demo in a browser, on Slicer's own core (`trame-slicer`: MRML scene, slice
and 3D views rendered offscreen by VTK, streamed to the page). Results reach the scene through the same bridge
as the Slicer module (`slicer/mrml.py`); the analysis runs as an `onfh analyze` child (`jobs.py`), one at a
time per server. A room of its own: it may import analysis/, slicer/, jobs and progress; only cli imports it.
"""
