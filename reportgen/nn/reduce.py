"""A layer's output tensor reduced to per-channel statistics: the last place a torch
type appears on the data path (everything after works on numpy)."""

from __future__ import annotations

import numpy as np
import torch

from reportgen.errors import ReportgenError
from reportgen.nn.channel_stats import ChannelStats


def channel_stats(batch_output: torch.Tensor) -> list[ChannelStats]:
    """Statistics per input of a layer output shaped [B, C, H, W] or [B, C]."""
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
    mean = flat.mean(dim=2)
    maximum, argmax = flat.max(dim=2)
    minimum = flat.min(dim=2).values
    std = flat.std(dim=2) if height * width > 1 else torch.full_like(mean, float("nan"))
    sparsity = (flat <= 0).float().mean(dim=2)
    results = []
    for b in range(batch):
        index = argmax[b].numpy()
        results.append(
            ChannelStats(
                mean=mean[b].double().numpy(),
                max=maximum[b].double().numpy(),
                min=minimum[b].double().numpy(),
                std=std[b].double().numpy(),
                sparsity=sparsity[b].double().numpy(),
                argmax_y=(index // width).astype(np.int64),
                argmax_x=(index % width).astype(np.int64),
                map_size=(height, width),
            )
        )
    return results
