"""Reports of hundreds of inputs (issue 13): every page bounded, every link resolves, the
gallery reaches every input with plain links, the statistics files equal a plain
forward pass, and dataset examples equal a brute-force top-k over all inputs."""

from __future__ import annotations

import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import invoke, write_images

TESTS = Path(__file__).resolve().parent.parent
MANY = 240
EXAMPLES = 5


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.hrefs.append(str(values["href"]))
        if values.get("src"):
            self.srcs.append(str(values["src"]))


def _links(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _local(page: Path, link: str) -> Path | None:
    parts = urlsplit(link)
    if parts.scheme or not parts.path:
        return None
    return (page.parent / unquote(parts.path)).resolve()


def _build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int, *extra: str) -> Path:
    monkeypatch.syspath_prepend(str(TESTS))
    sys.modules.pop("tinynet_factory", None)
    names = [f"img{i:04d}.png" for i in range(count)]
    images = write_images(tmp_path / f"in-{count}", count, (20, 24), seed=count, names=names)
    out = tmp_path / f"report-{count}"
    result = invoke(
        "run",
        str(images),
        "-m",
        "tinynet_factory:build",
        "--weights",
        "none",
        "--input-size",
        "16",
        "--examples",
        str(EXAMPLES),
        "--top-k",
        "3",
        "--jobs",
        "1",
        "-o",
        str(out),
        *extra,
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    monkeypatch = pytest.MonkeyPatch()
    try:
        root = tmp_path_factory.mktemp("scale")
        return {n: _build(root, monkeypatch, n) for n in (40, MANY)}
    finally:
        monkeypatch.undo()


def _kind(rel: str) -> str:
    if rel == "index.html" or rel.startswith("gallery/"):
        return "index"
    if "/classes/" in rel:  # the classes index, a class page, its further gallery pages
        return "class"
    if "/gallery/" in rel or rel.count("/") == 2:
        return "model"
    if "/layers/" in rel and "/inputs/" in rel:
        return "input x layer"
    if "/inputs/" in rel:
        return "input"
    if rel.endswith("/index.html"):
        return "layer"
    return "channel" if re.search(r"/c\d{4}\.html$", rel) else rel


def _heaviest(report: Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for page in report.rglob("*.html"):
        kind = _kind(page.relative_to(report).as_posix())
        sizes[kind] = max(sizes.get(kind, 0), page.stat().st_size)
    return sizes


def test_no_page_grows_with_the_number_of_inputs(reports: dict[int, Path]) -> None:
    few, many = _heaviest(reports[40]), _heaviest(reports[MANY])
    assert set(few) == set(many)
    for kind, size in many.items():
        # A page may name a few more inputs (longer numbers, fuller gallery pages), never
        # six times as many.
        assert size <= 1.25 * few[kind] + 2048, (kind, few[kind], size)
        assert size < 200_000, kind


def test_files_grow_with_inputs_plus_channels(reports: dict[int, Path]) -> None:
    counts = {n: sum(1 for p in r.rglob("*") if p.is_file()) for n, r in reports.items()}
    per_input = (counts[MANY] - counts[40]) / (MANY - 40)
    assert per_input <= 8, counts
    manifest = json.loads((reports[MANY] / "manifest.json").read_text())
    detail = [i for i in manifest["inputs"] if i["detail"]]
    assert len(detail) == 32 and detail == manifest["inputs"][:32]  # the default: first 32


def test_every_link_and_picture_resolves(reports: dict[int, Path]) -> None:
    report = reports[MANY]
    missing = []
    for page in report.rglob("*.html"):
        found = _links(page)
        for link in [*found.hrefs, *found.srcs]:
            target = _local(page, link)
            if target is not None and not target.exists():
                missing.append(f"{page.relative_to(report)} -> {link}")
    assert not missing, missing[:10]


def test_the_galleries_reach_every_input_by_plain_links(reports: dict[int, Path]) -> None:
    report = reports[MANY]
    manifest = json.loads((report / "manifest.json").read_text())
    (model,) = manifest["models"]
    for start, wanted in (
        (report / "index.html", {i["thumbnail"] for i in manifest["inputs"]}),
        (report / model["page"], set(model["input_pages"].values())),
    ):
        seen_pages, queue, reached = set(), [start.resolve()], set()
        while queue:
            page = queue.pop()
            if page in seen_pages:
                continue
            seen_pages.add(page)
            found = _links(page)
            for link in [*found.hrefs, *found.srcs]:
                target = _local(page, link)
                if target is None:
                    continue
                rel = target.relative_to(report.resolve()).as_posix()
                reached.add(rel)
                if "/gallery/" in f"/{rel}":  # follow the gallery's own pages only
                    queue.append(target)
        assert wanted <= reached, sorted(wanted - reached)[:5]
        assert len(seen_pages) == -(-MANY // 48)  # every gallery page, no JavaScript


def _plain_stats(manifest: dict[str, Any], images: Path) -> dict[str, np.ndarray]:
    """Per layer [input, channel, (mean, max)] from a plain forward pass of the model."""
    sys.path.insert(0, str(TESTS))
    try:
        import tinynet_factory
    finally:
        sys.path.remove(str(TESTS))
    torch.manual_seed(manifest["settings"]["seed"])
    model = tinynet_factory.build().eval()
    seen: dict[str, list[torch.Tensor]] = {"conv1": [], "conv2": []}
    for name in seen:
        getattr(model, name).register_forward_hook(
            lambda _m, _i, out, name=name: seen[name].append(out.detach().clone())
        )
    from torchvision.transforms import functional as F

    batch = []
    for entry in manifest["inputs"]:
        image = Image.open(images / Path(entry["source"]).name).convert("RGB")
        view = F.center_crop(F.resize(image, [round(16 * 256 / 224)]), [16])  # resize 18, crop 16
        batch.append(F.normalize(F.to_tensor(view), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]))
    with torch.no_grad():
        model(torch.stack(batch))
    result = {}
    for name, (output,) in seen.items():
        flat = output.flatten(2)
        result[name] = torch.stack([flat.mean(2), flat.amax(2)], dim=2).numpy()
    return result


def test_statistics_files_equal_a_plain_forward_pass(reports: dict[int, Path]) -> None:
    report = reports[40]
    manifest = json.loads((report / "manifest.json").read_text())
    plain = _plain_stats(manifest, report.parent / "in-40")
    for layer in manifest["models"][0]["layers"]:
        entry = layer["stats_file"]
        table = np.load(report / entry["path"], mmap_mode="r")
        fields = entry["fields"]
        assert "contribution" in fields  # on by default
        assert list(table.shape) == entry["shape"] == [40, layer["output_shape"][0], len(fields)]
        got = np.stack([table[:, :, fields.index("mean")], table[:, :, fields.index("max")]], 2)
        assert np.allclose(got, plain[layer["name"]], rtol=1e-4, atol=1e-5)
        listed = {f["path"] for f in manifest["files"]}
        assert entry["path"] in listed  # hashed like every other file


def test_dataset_examples_equal_a_brute_force_top_k(reports: dict[int, Path]) -> None:
    report = reports[MANY]
    manifest = json.loads((report / "manifest.json").read_text())
    ids = [i["id"] for i in manifest["inputs"]]
    for layer in manifest["models"][0]["layers"]:
        table = np.load(report / layer["stats_file"]["path"], mmap_mode="r")
        maxima = table[:, :, layer["stats_file"]["fields"].index("max")]
        for channel in layer["channels"]:
            c = channel["index"]
            # Highest max first; on equal values the earlier input.
            order = sorted(range(len(ids)), key=lambda i: (-float(maxima[i, c]), i))
            assert [e["input"] for e in channel["examples"]] == [ids[i] for i in order[:EXAMPLES]]
            assert channel["summary"]["inputs"] == len(ids)
            assert channel["summary"]["max"] == pytest.approx(float(maxima[:, c].max()), rel=1e-6)


@pytest.mark.parametrize(
    ("detail", "expected"),
    [(["--detail", "3"], 3), (["--detail", "all"], 50), (["--detail", "img0000*"], 1)],
)
def test_detail_inputs_keep_every_map(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, detail: list[str], expected: int
) -> None:
    report = _build(tmp_path, monkeypatch, 50, *detail)
    manifest = json.loads((report / "manifest.json").read_text())
    flagged = [i["id"] for i in manifest["inputs"] if i["detail"]]
    assert len(flagged) == expected
    layer = manifest["models"][0]["layers"][0]
    assert sorted(layer["detail_pages"]) == sorted(flagged)
    sheets = {p.stem for p in (report / Path(layer["page"]).parent / "sheets").glob("*.png")}
    assert sheets == set(flagged)


def test_a_detail_name_that_matches_nothing_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(TESTS))
    images = write_images(tmp_path / "in", 2, (20, 24))
    result = invoke(
        "run", str(images), "-m", "tinynet_factory:build", "--weights", "none",
        "--input-size", "16", "--detail", "nothing*", "-o", str(tmp_path / "r"),
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--detail 'nothing*' matches no input" in result.stderr
