"""One volume in, one result folder out: hip finding (`localization`, `hipfinder`), segmentation and
measures (`segment`, `measure`), grades (`grading`, `grades`), the `pipeline.Analyzer`, maps on the input
grid (`maps`), results and their schema (`results`), the HTML report and figures, and batches.

May import `imaging`, `models`, `survival` and the top-level helpers; never `training`, `slicer` or `cli`.
"""
