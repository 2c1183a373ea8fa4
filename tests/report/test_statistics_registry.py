"""The per-channel statistics are defined once (``reportgen.statistics``): a statistic
added to that definition alone (here the 99th percentile, in a scratch copy of the
registry) reaches the statistics file, the pages and the manifest, and a cache entry
made with other statistics is a miss that says so."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from reportgen import statistics as registry
from tests.helpers import invoke, write_images

SIZE = 32
P99 = registry.Statistic(
    "p99",
    lambda flat: flat.quantile(0.99, dim=2),
    over_inputs=(registry.OverInputs("p99", "mean", "99th percentile"),),
)


def _with_p99(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "STATISTICS", (*registry.STATISTICS, P99))


def _run(images: Path, out: Path, *extra: str) -> None:
    result = invoke(
        "-q", "run", str(images), "-m", "tests.tinynet_factory:build", "--weights", "none",
        "--input-size", str(SIZE), "-l", "conv2", "--no-gradcam", "--jobs", "1",
        "--device", "cpu", "-o", str(out), *extra,
        env={"REPORTGEN_CACHE_DIR": "off"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output + result.stderr


def _conv2_maps(report: Path, manifest: dict[str, Any]) -> np.ndarray:
    """conv2's output on each input of the report, [input, channel, positions]: the
    model built again (seed 0, as ``--weights none`` builds it) with a hook of our own."""
    from reportgen.nn.models import custom_preprocessing
    from tests.tinynet_factory import build

    torch.manual_seed(0)
    model = build().eval()
    prep = custom_preprocessing(SIZE, (), ())
    recorded: list[torch.Tensor] = []
    model.conv2.register_forward_hook(lambda _m, _i, out: recorded.append(out.clone()))
    with torch.no_grad():
        for item in manifest["inputs"]:
            with Image.open(report.parent / "images" / Path(item["source"]).name) as image:
                model(prep.tensor(prep.view(image.convert("RGB")))[None])
    maps = torch.cat(recorded).double().numpy()
    return maps.reshape(maps.shape[0], maps.shape[1], -1)


def test_a_statistic_added_to_the_definition_reaches_file_pages_and_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_p99(monkeypatch)
    images = write_images(tmp_path / "images", 3, (SIZE, SIZE), seed=5)
    out = tmp_path / "report"
    _run(images, out, "--detail", "all")
    manifest = json.loads((out / "manifest.json").read_text())
    layer = manifest["models"][0]["layers"][0]
    fields = layer["stats_file"]["fields"]
    assert fields == [
        "mean", "max", "min", "std", "sparsity", "p99", "argmax_y", "argmax_x", "contribution"
    ]  # fmt: skip
    table = np.load(out / layer["stats_file"]["path"])
    assert table.shape[2] == len(fields) == layer["stats_file"]["shape"][2]

    maps = _conv2_maps(out, manifest)
    # the means agree: the maps are the report's; then the new column is their 99th percentile
    np.testing.assert_allclose(table[:, :, 0], maps.mean(axis=2), rtol=1e-5, atol=1e-6)
    expected = np.percentile(maps, 99, axis=2)
    np.testing.assert_allclose(table[:, :, fields.index("p99")], expected, rtol=1e-5, atol=1e-6)

    over_inputs = expected.mean(axis=0)  # per channel, the mean over inputs
    for channel in layer["channels"]:
        shown = channel["summary"]["p99"]
        assert shown == pytest.approx(over_inputs[channel["index"]], rel=1e-5, abs=1e-6)

    page = (out / layer["page"]).read_text()
    assert '<option value="p99">99th percentile</option>' in page
    data = re.search(r'<script type="application/json" class="channel-data">(.*?)</script>', page)
    assert data is not None
    column = json.loads(data.group(1))["stats"]["p99"]
    np.testing.assert_allclose(column, over_inputs, rtol=1e-5, atol=1e-6)
    assert "argmax_y, argmax_x" in page and "sparsity, p99" in page  # the file's fields

    detail = next(iter(layer["detail_pages"].values()))
    detail_page = (out / detail).read_text()
    heads = re.findall(r'<th scope="col">(.*?)</th>', detail_page.split("</thead>")[0])
    assert heads[1:7] == ["mean", "max", "min", "std", "sparsity", "p99"]


def test_an_entry_made_with_other_statistics_is_an_explicit_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from reportgen.compute.cached import ResultStore
    from reportgen.results.entry_format import EntryMismatch, result_entry, result_from_entry
    from reportgen.results.records import InputResult, LayerFacts, LayerResult

    names = registry.statistic_names()  # the definition as it stands

    def stats() -> registry.ChannelStats:
        zeros = np.zeros(4, np.int64)
        values = {name: np.arange(4.0) for name in names}
        return registry.ChannelStats(argmax_y=zeros, argmax_x=zeros, map_size=(2, 2), **values)

    layer = LayerFacts("conv", "Conv2d", "output", (4, 2, 2), True)
    store = ResultStore(tmp_path / "cache", "model", {"a": "sha-a"}, (layer,))
    result = InputResult("a", [(0, 1.0)], [], {"conv": LayerResult(stats(), [1], (0.0, 3.0))})
    store.save(result)
    entry = result_entry(result)
    loaded = store.load("a")
    assert loaded is not None and loaded.layers["conv"].stats.max.tolist() == [0, 1, 2, 3]

    _with_p99(monkeypatch)
    with pytest.raises(EntryMismatch, match="statistics"):
        result_from_entry(entry, ["conv"])
    with caplog.at_level("INFO", logger="reportgen"):
        assert store.load("a") is None
    assert store.cache.other_format == [store.input_key("a")]
    assert (store.cache.hits, store.cache.misses) == (1, 1)
    assert "of another format" in caplog.text and "p99" in caplog.text
    with pytest.raises(TypeError, match="p99"):  # a result without it is refused loudly
        stats()
