"""What the network stage hands on for each layer and input: per-channel statistics as
numpy arrays. The type and the statistics it holds are defined in
``reportgen.statistics``; this name stays for the modules that import it here."""

from __future__ import annotations

from reportgen.statistics import ChannelStats

__all__ = ["ChannelStats"]
