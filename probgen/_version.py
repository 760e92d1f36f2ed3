"""The package version, at the bottom of the import graph (io.py and the CLI read it here)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
