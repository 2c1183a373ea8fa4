"""The weights view's numbers: strongest input channels by the signed L2 norm of their
kernel slices, against a brute-force loop over every output and input channel."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reportgen.analysis.weights import signed_norms, strongest_inputs


def _brute_force(weight: np.ndarray, groups: int, per_sign: int) -> list[list[tuple[int, float]]]:
    out, per_group = weight.shape[:2]
    views = []
    for o in range(out):
        first = (o // (out // groups)) * per_group
        scored = []
        for j in range(per_group):
            kernel = weight[o, j]
            norm = math.sqrt(sum(float(v) ** 2 for v in kernel.ravel()))
            scored.append((norm if kernel.sum() >= 0 else -norm, first + j))
        positive = sorted((s for s in scored if s[0] > 0), key=lambda s: (-s[0], s[1]))
        negative = sorted((s for s in scored if s[0] < 0), key=lambda s: (s[0], s[1]))
        views.append([(i, v) for v, i in positive[:per_sign] + negative[:per_sign]])
    return views


@pytest.mark.parametrize(
    ("shape", "groups"),
    [
        ((8, 20, 3, 3), 1),
        ((6, 4, 1, 1), 1),
        ((12, 1, 5, 5), 12),
        ((8, 3, 3, 3), 4),
        ((4, 2, 1, 1), 2),
    ],
)
def test_strongest_inputs_equal_a_brute_force_loop(shape: tuple[int, ...], groups: int) -> None:
    weight = np.random.default_rng(sum(shape)).normal(size=shape).astype(np.float32)
    view = strongest_inputs(weight, groups, per_sign=3)
    expected = _brute_force(weight.astype(np.float64), groups, 3)
    for o in range(shape[0]):
        shown = [(i, v) for _, i, v in view.shown(o)]
        assert [i for i, _ in shown] == [i for i, _ in expected[o]]
        np.testing.assert_allclose([v for _, v in shown], [v for _, v in expected[o]], rtol=1e-6)
    assert view.inputs_per_output == shape[1]


def test_a_one_by_one_slice_scores_its_weight_and_a_depthwise_channel_has_one_input() -> None:
    weight = np.array([[[[0.5]], [[-2.0]], [[0.0]], [[1.5]]]])  # one output, four inputs
    assert signed_norms(weight).tolist() == [[0.5, -2.0, 0.0, 1.5]]
    view = strongest_inputs(weight, 1, per_sign=6)
    # Zero weights are neither positive nor negative; empty slots are -1 / NaN.
    assert [(i, v) for _, i, v in view.shown(0)] == [(3, 1.5), (0, 0.5), (1, -2.0)]
    assert view.inputs[0, 3] == -1 and math.isnan(view.values[0, 3])
    depthwise = strongest_inputs(np.ones((5, 1, 3, 3)), 5, per_sign=6)
    assert [[i for _, i, _ in depthwise.shown(o)] for o in range(5)] == [[0], [1], [2], [3], [4]]


def test_ties_go_to_the_lower_input_channel() -> None:
    weight = np.ones((1, 9, 2, 2))
    view = strongest_inputs(weight, 1, per_sign=4)
    assert [i for _, i, _ in view.shown(0)] == [0, 1, 2, 3]
