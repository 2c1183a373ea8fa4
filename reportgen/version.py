"""reportgen's version: a module of its own, so that any module can name it without
importing the package root (whose API facade reaches the whole pipeline)."""

__version__ = "0.1.0"
