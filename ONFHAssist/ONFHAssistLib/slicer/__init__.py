"""What only 3D Slicer needs: the MRML scene bridge (`mrml`, the only module that imports `slicer`, and the
only place that converts LPS to RAS), first-use dependencies (`dependencies`), the Sample Data demo case
(`demo_case`).

Imported from the Slicer GUI process, so nothing here may import a package Slicer does not ship at module
level (torch, monai, pandas, scikit-learn, psutil, jsonschema).
"""
