"""The package version (one place; ``restyle.__version__`` and the run record read it)."""

__version__ = "0.1.0"
