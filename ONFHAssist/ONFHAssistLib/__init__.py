"""ONFH Assist core: everything the Slicer panels do, importable and testable without Slicer."""

__version__ = "0.1.0"
