"""A layer's output tensor reduced to per-channel statistics: the last place a torch
type appears on the data path (everything after works on numpy). The statistics and
their reductions are ``reportgen.statistics``'; this applies each of them."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from reportgen.errors import ReportgenError
from reportgen.statistics import ChannelStats, statistics


def channel_stats(
    batch_output: torch.Tensor, contributions: Mapping[str, torch.Tensor] | None = None
) -> list[ChannelStats]:
    """Statistics per input of a layer output shaped [B, C, H, W] or [B, C], with the
    ``contributions`` computed for it (name -> [B, C])."""
    values = batch_output.detach().float()
    if values.dim() == 2:
        values = values[:, :, None, None]
    if values.dim() != 4:
        raise ReportgenError(
            f"cannot summarise a layer output of shape {tuple(batch_output.shape)}; "
            "choose convolutional or linear layers"
        )
    batch, channels, height, width = values.shape
    flat = values.reshape(batch, channels, height * width)
    reduced = {stat.name: stat.reduce(flat).double() for stat in statistics()}
    argmax = flat.max(dim=2).indices
    results = []
    for b in range(batch):
        index = argmax[b].numpy()
        results.append(
            ChannelStats(
                argmax_y=(index // width).astype(np.int64),
                argmax_x=(index % width).astype(np.int64),
                map_size=(height, width),
                **{name: per_input[b].numpy() for name, per_input in reduced.items()},
                **{name: per_input[b].numpy() for name, per_input in (contributions or {}).items()},
            )
        )
    return results
