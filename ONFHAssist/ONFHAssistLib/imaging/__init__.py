"""Images as SimpleITK sees them: read and write volumes (NIfTI, NRRD, MHA, DICOM), orientation, fixed
physical crops around a hip, the left-to-right mirror and its inverse.

May import numpy, SimpleITK and the top-level helpers (`atomic`, `errors`); never `analysis`, `training`,
`slicer` or `cli`.
"""
