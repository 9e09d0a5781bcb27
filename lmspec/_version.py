"""lmspec's version: one place, read by the package face, the command line and the build."""

__version__ = "0.2.0"
