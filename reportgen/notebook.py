"""The notebook view under its first name: ``from reportgen.notebook import Report`` (it
lives in ``reportgen.tools.notebook``)."""

from reportgen.tools.notebook import LayerView, Report

__all__ = ["LayerView", "Report"]
