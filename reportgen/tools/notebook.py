"""A report, or one layer of it, shown inline in a Jupyter notebook.

    from reportgen.tools.notebook import Report
    report = Report("report")          # a folder written by `reportgen run`
    report                             # inputs, predictions and the layers
    report.layer("features.0")         # selected channels: maps, overlays, statistics

Everything comes from the report folder (manifest.json and its pictures, embedded as
data: URIs so the output survives in a saved notebook); nothing is recomputed and
torch is not imported. All text is HTML-escaped.

A report may come from someone else, so its manifest is data: the view reads only the
files the manifest lists, below the report folder (no ``..``, no absolute paths, no
symbolic links), that are regular files whose sha256 and size match the listing, and
decodes pictures within the input pixel limit (``tools.report_files``). Anything else
shows as missing.
"""

from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path
from typing import Any

from reportgen.report.manifest_file import (
    MANIFEST,
    ManifestUnreadable,
    read_manifest,
)
from reportgen.report.text import format_number, format_percent, plural
from reportgen.results.records import channel_label
from reportgen.statistics import Statistic, statistics
from reportgen.tools.report_files import ReportFiles, fill_pattern

__all__ = ["LayerView", "Report"]

_STYLE = """<style>
.rg-nb { font: 13px/1.4 system-ui, sans-serif; }
.rg-nb h3, .rg-nb h4 { margin: .6em 0 .3em; }
.rg-nb .rg-row { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; }
.rg-nb figure { margin: 0; text-align: center; }
.rg-nb figcaption { font-size: 11px; max-width: 180px; overflow-wrap: anywhere; }
.rg-nb img.rg-map { image-rendering: pixelated; width: 96px; height: 96px; }
.rg-nb img.rg-overlay, .rg-nb img.rg-thumb { width: 128px; height: auto; }
.rg-nb table { border-collapse: collapse; }
.rg-nb th, .rg-nb td { padding: 1px 8px; text-align: left; border-bottom: 1px solid #ccc8; }
.rg-nb td.num { text-align: right; font-variant-numeric: tabular-nums; }
.rg-nb .rg-muted { opacity: .75; }
</style>"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    """Numbers as the report's pages write them (one formatter for both)."""
    return format_number(value)


def _left_out(shown: list[Any], every: list[Any], noun: str) -> str:
    """'Showing 8 of 12 selected channels; 4 left out.'"""
    return (
        f"Showing {len(shown)} of {plural(len(every), noun)}; {len(every) - len(shown)} left out."
    )


def _stat_text(value: Any, stat: Statistic) -> str:
    """A statistic as the notebook shows it: a number, or a percentage (its display)."""
    return format_percent(value) if stat.display == "percent" else _num(value)


def _picture_img(picture: Any, kind: str, alt: str, cls: str) -> str:
    """A PIL image as an <img> with a data: URI; a note when there is none."""
    if picture is None:
        return f'<span class="rg-muted">({_e(alt)}: missing)</span>'
    import io

    buffer = io.BytesIO()
    picture.save(buffer, format=kind)
    uri = f"data:image/{kind.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()
    return f'<img class="{cls}" src="{uri}" alt="{_e(alt)}">'


class Report(ReportFiles):
    """A report folder written by ``reportgen run``, displayable in Jupyter.

    ``path`` is the folder or its manifest.json. FileNotFoundError when there is no
    manifest; a bad one raises the report stage's ManifestError (a ReportgenError),
    with the same message as ``reportgen verify`` and ``run --from-manifest``."""

    def __init__(self, path: str | os.PathLike[str], max_inputs: int = 8) -> None:
        folder = Path(path)
        if folder.is_file() and folder.name == MANIFEST:
            folder = folder.parent
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            hint = (
                " (a --single-file report is one HTML page: open it in a browser, or use a "
                "folder report here)"
                if folder.suffix.lower() in (".html", ".htm")
                else ""
            )
            raise FileNotFoundError(f"no {MANIFEST} in {str(folder)!r}: not a report folder{hint}")
        try:  # a bad manifest: the reader's ManifestError, as verify and --from-manifest say
            manifest = read_manifest(folder)
        except ManifestUnreadable as exc:
            raise FileNotFoundError(f"{exc}: not a report folder") from exc
        super().__init__(folder, manifest.data)
        self.manifest: dict[str, Any] = manifest.data
        self.max_inputs = max_inputs

    # --- data ---------------------------------------------------------------------

    @property
    def inputs(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("inputs", []))

    @property
    def models(self) -> list[dict[str, Any]]:
        return list(self.manifest.get("models", []))

    def model(self, model: str | None = None) -> dict[str, Any]:
        """A model of the report by id or name (the first one when not given)."""
        models = self.models
        if not models:
            raise KeyError("this report has no models")
        if model is None:
            return models[0]
        for candidate in models:
            if model in (candidate.get("id"), candidate.get("name")):
                return candidate
        known = ", ".join(str(m.get("id")) for m in models)
        raise KeyError(f"no model {model!r} in this report; it has: {known}")

    def layers(self, model: str | None = None) -> list[str]:
        return [layer["name"] for layer in self.model(model).get("layers", [])]

    def layer(self, name: str, model: str | None = None, max_channels: int = 8) -> LayerView:
        """One layer, displayable: its selected channels per input."""
        chosen = self.model(model)
        for layer in chosen.get("layers", []):
            if layer.get("name") == name:
                return LayerView(self, chosen, layer, max_channels=max_channels)
        known = ", ".join(self.layers(chosen.get("id")))
        raise KeyError(f"no layer {name!r} in model {chosen.get('id')!r}; it has: {known}")

    def page(self, relpath: str = "index.html") -> Path:
        """The file of one page of the report."""
        return self.root / relpath

    def link(self, relpath: str) -> str:
        """A link to a report file that works from the notebook: relative to the working
        directory (what Jupyter serves) when the report is below it, else a file: URI."""
        target = (self.root / relpath).resolve()
        try:
            return target.relative_to(Path.cwd().resolve()).as_posix()
        except ValueError:
            return target.as_uri()

    def _img(self, relpath: str | None, alt: str, cls: str) -> str:
        uri = self.data_uri(relpath)
        if uri is None:
            return f'<span class="rg-muted">({_e(alt)}: missing)</span>'
        return f'<img class="{cls}" src="{uri}" alt="{_e(alt)}">'

    # --- display ------------------------------------------------------------------

    def _repr_html_(self) -> str:
        m = self.manifest
        parts = [_STYLE, '<div class="rg-nb">']
        generator = m.get("generator", {})
        parts.append(
            f"<h3>reportgen report: {plural(len(self.models), 'model')}, "
            f"{plural(len(self.inputs), 'input')}</h3>"
            f'<p class="rg-muted">{_e(self.root)} &middot; {_e(generator.get("name", ""))} '
            f"{_e(generator.get('version', ''))} &middot; {_e(m.get('created', ''))} &middot; "
            f'<a href="{_e(self.link("index.html"))}" target="_blank">open index.html</a></p>'
        )
        for warning in m.get("warnings", []):
            parts.append(f'<p class="rg-muted">warning: {_e(warning)}</p>')
        shown = self.inputs[: self.max_inputs]
        if len(shown) < len(self.inputs):
            parts.append(f'<p class="rg-muted">{_left_out(shown, self.inputs, "input")}</p>')
        parts.append('<div class="rg-row">')
        for item in shown:
            caption = [f"<strong>{_e(item.get('source', item.get('id')))}</strong>"]
            for model in self.models:
                preds = model.get("predictions", {}).get(item.get("id"), [])
                if preds:
                    top = preds[0]
                    caption.append(
                        f"{_e(model.get('id'))}: {_e(top.get('label'))} "
                        f"{format_percent(float(top.get('probability', 0)))}"
                    )
            parts.append(
                "<figure>"
                + self._img(item.get("thumbnail"), f"Input {item.get('source')}", "rg-thumb")
                + f"<figcaption>{'<br>'.join(caption)}</figcaption></figure>"
            )
        parts.append("</div>")
        if len(self.inputs) > len(shown):
            parts.append(f'<p class="rg-muted">and {len(self.inputs) - len(shown)} more inputs</p>')
        for model in self.models:
            parts.append(
                f'<h4>{_e(model.get("id"))} <span class="rg-muted">'
                f"({_e(model.get('weights', ''))})</span></h4>"
                "<table><thead><tr><th>layer</th><th>type</th><th>output shape</th>"
                "<th>recorded value</th></tr></thead><tbody>"
            )
            for layer in model.get("layers", []):
                shape = "\u00d7".join(str(d) for d in layer.get("output_shape", []))
                parts.append(
                    f'<tr><td><a href="{_e(self.link(layer.get("page", "")))}" target="_blank">'
                    f"{_e(layer.get('name'))}</a></td><td>{_e(layer.get('type'))}</td>"
                    f"<td>{_e(shape)}</td><td>{_e(layer.get('value', ''))}</td></tr>"
                )
            parts.append("</tbody></table>")
        parts.append(
            '<p class="rg-muted">Show a layer inline with <code>report.layer(NAME)</code>.</p>'
        )
        parts.append("</div>")
        return "\n".join(parts)

    def __repr__(self) -> str:
        return (
            f"Report({str(self.root)!r}: {plural(len(self.models), 'model')}, "
            f"{plural(len(self.inputs), 'input')})"
        )


class LayerView:
    """One layer of a report: for each input its selected channels (map, overlay, stats)."""

    def __init__(
        self, report: Report, model: dict[str, Any], layer: dict[str, Any], max_channels: int = 8
    ) -> None:
        self.report = report
        self.model = model
        self.info = layer
        self.max_channels = max_channels
        self._table: Any = None

    @property
    def name(self) -> str:
        return str(self.info.get("name"))

    def selected(self, input_id: str) -> list[int]:
        return [int(c) for c in self.info.get("selected", {}).get(input_id, [])]

    def stats(self, channel: int, input_id: str) -> dict[str, Any]:
        """A channel's statistics on one input, from the layer's statistics file."""
        table = self.table()
        rows = {i.get("id"): n for n, i in enumerate(self.report.inputs)}
        if table is None or input_id not in rows or not 0 <= channel < table.shape[1]:
            return {}
        fields = self.info["stats_file"]["fields"]
        values = [float(v) for v in table[rows[input_id], channel]]
        return {f: (v if math.isfinite(v) else None) for f, v in zip(fields, values)}

    def table(self) -> Any:
        """Every input's statistics of every channel, [input, channel, field], as a
        read-only memory map of the layer's ``stats.npy`` (only when it is listed in the
        manifest and unchanged; None when there is none)."""
        import numpy as np

        if self._table is not None:
            return self._table
        entry = self.info.get("stats_file")
        if not entry:
            return None
        path = self.report.verified_path(entry.get("path"))  # hashed once: kept
        if path is None:
            return None
        try:
            self._table = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            return None
        return self._table

    def _map_picture(self, input_id: str, channel: int) -> Any:
        """A channel's map as a PIL image: its own file, or its tile cropped out of the
        layer's sheet for this input (folder reports). None when it is missing."""

        from reportgen.imaging.sheets import SheetGrid

        grid_entry = self.info.get("map_sheet")
        sheet = self._pattern("map_sheet", input_id, channel)
        single = self._pattern("map", input_id, channel)
        try:
            if grid_entry and sheet:
                picture = self.report.picture(sheet)
                if picture is None:
                    return None
                return picture.crop(SheetGrid.from_manifest(grid_entry).box(channel))
            if single:
                return self.report.picture(single)
        except (OSError, ValueError, TypeError, KeyError):  # a sheet layout that does not fit
            pass
        return None

    def _overlay_picture(self, input_id: str, map_picture: Any) -> Any:
        """The map over the network's view, blended as the report's pages do it (the map
        smoothed to the view's size, at the report's --alpha)."""
        from PIL import Image

        view_path = self.model.get("views", {}).get(input_id)
        if map_picture is None or not view_path:
            return None
        alpha = float(self.report.manifest.get("settings", {}).get("alpha", 0.5))
        opened = self.report.picture(view_path)
        if opened is None:
            return None
        view = opened.convert("RGB")
        smoothed = map_picture.convert("RGB").resize(view.size, Image.Resampling.BILINEAR)
        return Image.blend(view, smoothed, alpha)

    def _pictures(self, input_id: str, channel: int) -> str:
        """The map and the overlay of one channel on one input, as <img> elements."""
        report = self.report
        alt = f"Channel {channel} overlaid on the input"
        picture = self._map_picture(input_id, channel)
        shown = _picture_img(picture, "PNG", f"Map of channel {channel}", "rg-map")
        overlay_file = self._pattern("overlay", input_id, channel)
        if overlay_file:  # written with --overlay-files
            return shown + report._img(overlay_file, alt, "rg-overlay")
        overlay = self._overlay_picture(input_id, picture)
        return shown + _picture_img(overlay, "JPEG", alt, "rg-overlay")

    def _pattern(self, kind: str, input_id: str, channel: int) -> str | None:
        pattern = self.info.get("images", {}).get(kind)
        if not isinstance(pattern, str) or not pattern:
            return None
        return fill_pattern(pattern, input_id, channel)

    def _repr_html_(self) -> str:
        report, info = self.report, self.info
        shape = "\u00d7".join(str(d) for d in info.get("output_shape", []))
        parts = [_STYLE, '<div class="rg-nb">']
        parts.append(
            f"<h3>{_e(self.model.get('id'))} &rsaquo; {_e(self.name)}</h3>"
            f'<p class="rg-muted">{_e(info.get("type"))}, output {_e(shape)}; '
            f"{_e(info.get('value', ''))} &middot; strategy "
            f"{_e(report.manifest.get('settings', {}).get('strategy', ''))} &middot; "
            f'<a href="{_e(report.link(info.get("page", "")))}" target="_blank">open the layer '
            "page</a></p>"
        )
        names = {i.get("id"): i.get("source", i.get("id")) for i in report.inputs}
        every_input = list(info.get("selected", {}))
        shown_inputs = every_input[: report.max_inputs]
        if len(shown_inputs) < len(every_input):
            parts.append(f'<p class="rg-muted">{_left_out(shown_inputs, every_input, "input")}</p>')
        for input_id in shown_inputs:
            every_channel = self.selected(input_id)
            chosen = every_channel[: self.max_channels]
            parts.append(f"<h4>{_e(names.get(input_id, input_id))}</h4>")
            if len(chosen) < len(every_channel):
                noun = "unit" if info.get("units") else "channel"
                parts.append(
                    f'<p class="rg-muted">{_left_out(chosen, every_channel, "selected " + noun)}'
                    " (<code>max_channels</code> sets how many)</p>"
                )
            if info.get("units"):
                parts.extend(self._unit_table(input_id, chosen))
            else:
                parts.extend(self._map_figures(input_id, chosen))
                parts.extend(self._stats_table(input_id, chosen))
        parts.append("</div>")
        return "\n".join(parts)

    def _map_figures(self, input_id: str, chosen: list[int]) -> list[str]:
        images = self.info.get("images", {})
        if "map" not in images and "map_sheet" not in images:
            return []
        parts = ['<div class="rg-row">']
        for c in chosen:
            s = self.stats(c, input_id)
            pictures = self._pictures(input_id, c)
            parts.append(
                f"<figure>{pictures}<figcaption>channel {c}: mean {_num(s.get('mean'))}"
                f", max {_num(s.get('max'))}</figcaption></figure>"
            )
        parts.append("</div>")
        return parts

    def _stats_table(self, input_id: str, chosen: list[int]) -> list[str]:
        shown = statistics()
        heads = "".join(f"<th>{_e(stat.name)}</th>" for stat in shown)
        parts = [f"<table><thead><tr><th>channel</th>{heads}</tr></thead><tbody>"]
        for c in chosen:
            s = self.stats(c, input_id)
            cells = "".join(
                f"<td class=num>{_stat_text(s.get(stat.name), stat)}</td>" for stat in shown
            )
            parts.append(f"<tr><td>{c}</td>{cells}</tr>")
        parts.append("</tbody></table>")
        return parts

    def _unit_table(self, input_id: str, chosen: list[int]) -> list[str]:
        """A unit layer (Linear, 1x1 outputs) has one value per unit and input: no maps,
        and no mean/max/min that are copies of that value."""
        channels = self.info.get("channels", [])
        parts = ["<table><thead><tr><th>unit</th><th>value</th></tr></thead><tbody>"]
        for c in chosen:
            label = channels[c].get("label") if c < len(channels) else None
            name = channel_label(c, spatial=False, label=label)
            value = self.stats(c, input_id).get("mean")
            parts.append(f"<tr><td>{_e(name)}</td><td class=num>{_num(value)}</td></tr>")
        parts.append("</tbody></table>")
        return parts

    def __repr__(self) -> str:
        return f"LayerView({self.model.get('id')!r}, {self.name!r})"
