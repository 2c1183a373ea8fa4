"""The numbers behind a comparison of two checkpoints: how similar their filters are.
numpy only; the comparison pages are built in ``reportgen.report.compare``."""

from __future__ import annotations

import numpy as np


def filter_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each output channel's kernel in ``a`` and in ``b``."""
    flat_a = a.reshape(a.shape[0], -1).astype(np.float64)
    flat_b = b.reshape(b.shape[0], -1).astype(np.float64)
    norms = np.linalg.norm(flat_a, axis=1) * np.linalg.norm(flat_b, axis=1)
    dots = (flat_a * flat_b).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), np.nan)
    return cosine
