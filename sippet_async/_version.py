"""The package version, in a module of its own so the transport can name it without
importing the package root (which sits above it)."""

__version__ = "0.1.0"
