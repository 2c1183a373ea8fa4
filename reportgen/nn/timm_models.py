"""timm models by name: ``-m timm/NAME`` (``timm/resnet50.a1_in1k``, ``timm/convnext_tiny``).

Built by ``timm.create_model``; preprocessing is the model's own pretrained
configuration (``timm.data.resolve_data_config``), class names timm's ImageNet metadata.
Weights: ``imagenet`` from Hugging Face's cache (``nn.hf_cache``), ``none``, or a file
(safetensors or torch.save, ``nn.weights.load_state_dict``). ``timm`` is an optional extra.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from reportgen.errors import ReportgenError
from reportgen.nn.hf_cache import find_hub_weights
from reportgen.nn.models import LoadedModel, Preprocessing, apply_state_dict
from reportgen.nn.timm_names import PREFIX, is_timm
from reportgen.nn.weights import ResolvedWeights, _one_line, load_state_dict

if TYPE_CHECKING:
    import torch

INSTALL_HINT = "pip install 'reportgen[timm]' (timm and safetensors)"
HUB_FILES = ("model.safetensors", "pytorch_model.bin")


def require_timm(what: str) -> ModuleType:
    try:
        import timm
    except ImportError as exc:
        raise ReportgenError(
            f"{what} needs the timm package, which is not installed: {INSTALL_HINT}"
        ) from exc
    return timm


def timm_name(name: str) -> str:
    """``timm/resnet50.a1_in1k`` -> ``resnet50.a1_in1k``."""
    return name[len(PREFIX) :] if is_timm(name) else name


def list_timm_models(pattern: str = "") -> list[str]:
    """timm's architectures matching a glob; a pattern with a dot (``resnet50.*``)
    lists pretrained tags instead."""
    timm = require_timm("reportgen models --timm")
    if "." in pattern:
        return sorted(timm.list_models(pattern, pretrained=True))
    return sorted(timm.list_models(pattern or "*"))


def check_timm_name(name: str) -> str:
    """The timm name of ``-m timm/NAME``, checked; unknown names get the closest."""
    timm = require_timm(f"model {name!r}")
    bare = timm_name(name)
    architecture, dot, tag = bare.partition(".")
    known = timm.list_models()
    if architecture in known and not dot:
        return bare
    if architecture in known and dot:
        tagged = timm.list_models(architecture + ".*", pretrained=True)
        if bare in tagged:
            return bare
        close = difflib.get_close_matches(bare, tagged, n=4, cutoff=0.3) or tagged[:4]
        pool: list[str] = close
    else:
        pool = difflib.get_close_matches(architecture, known, n=4, cutoff=0.5)
    hint = f"; closest: {', '.join(PREFIX + c for c in pool)}" if pool else ""
    raise ReportgenError(
        f"unknown timm model {name!r}{hint} (see 'reportgen models --timm PATTERN')"
    )


@dataclass(frozen=True)
class TimmPreprocessing(Preprocessing):
    """timm's eval transform (resize by ``crop_pct``, crop as ``crop_mode`` says,
    normalise): the view is exactly the picture timm's transform normalises."""

    crop_pct: float = 0.875
    crop_mode: str = "center"

    def view(self, image: Any, source: str = "an input") -> Any:
        from reportgen.inputs.files import check_view_size

        check_view_size(source, image.width, image.height, (self.resize_size, self.crop_size))
        for step in self.view_steps():
            image = step(image)
        return image

    def view_steps(self) -> list[Any]:
        """timm's own eval steps up to the tensor (resize and crop), built by timm."""
        from timm.data.transforms_factory import transforms_imagenet_eval

        compose = transforms_imagenet_eval(
            img_size=(int(self.crop_size[0]), int(self.crop_size[-1])),
            crop_pct=self.crop_pct,
            crop_mode=self.crop_mode,
            interpolation=str(getattr(self.interpolation, "value", self.interpolation)),
            mean=self.mean,
            std=self.std,
        )
        tensor_steps = ("ToTensor", "MaybeToTensor", "Normalize")
        return [t for t in compose.transforms if type(t).__name__ not in tensor_steps]

    def describe(self) -> str:
        mode = getattr(self.interpolation, "value", self.interpolation)
        return (
            f"timm: resize {'x'.join(map(str, self.resize_size))} ({mode}), "
            f"{self.crop_mode} crop {'x'.join(map(str, self.crop_size))} "
            f"(crop_pct {self.crop_pct:g}), mean {tuple(round(v, 4) for v in self.mean)}, "
            f"std {tuple(round(v, 4) for v in self.std)}"
        )


def timm_preprocessing(module: torch.nn.Module) -> TimmPreprocessing:
    """The model's own data configuration, as ``resolve_data_config`` gives it."""
    from timm.data import resolve_data_config
    from torchvision.transforms import InterpolationMode

    config = resolve_data_config(model=module)
    height, width = (int(v) for v in config["input_size"][-2:])
    crop_pct = float(config.get("crop_pct") or 0.875)
    scale = (math.floor(height / crop_pct), math.floor(width / crop_pct))
    mode = str(config.get("crop_mode") or "center")
    resize = (scale[0],) if mode == "center" and scale[0] == scale[1] else scale
    return TimmPreprocessing(
        resize_size=resize,
        crop_size=(height, width),
        mean=tuple(float(v) for v in config["mean"]),
        std=tuple(float(v) for v in config["std"]),
        interpolation=InterpolationMode(str(config.get("interpolation") or "bilinear")),
        crop_pct=crop_pct,
        crop_mode=mode,
    )


def timm_categories(module: torch.nn.Module) -> list[str] | None:
    """timm's ImageNet class names (1k, 12k, 21k/22k as its metadata has them) where the
    head has as many outputs; None otherwise."""
    from timm.data import ImageNetInfo, infer_imagenet_subset

    outputs = int(getattr(module, "num_classes", 0) or 0)
    try:
        subset = infer_imagenet_subset(module)
        info = ImageNetInfo(subset) if subset else None
    except Exception:  # noqa: BLE001 - no metadata for this label set
        return None
    if info is None or outputs <= 0 or info.num_classes() != outputs:
        return None
    return [info.index_to_description(i).split(", ")[0] for i in range(outputs)]


def _classifier_rows(module: torch.nn.Module, state: dict[str, Any]) -> int | None:
    """The class count of a checkpoint whose classifier is another width than the
    built model's (a fine-tuned head): the rows of its classifier weight."""
    config: dict[str, Any] = dict(getattr(module, "pretrained_cfg", None) or {})
    names = config.get("classifier")
    own_state = module.state_dict()
    for name in [names] if isinstance(names, str) else list(names or []):
        weight = state.get(f"{name}.weight")
        own = own_state.get(f"{name}.weight")
        if weight is not None and own is not None and weight.shape[0] != own.shape[0]:
            return int(weight.shape[0])
    return None


def _create(name: str, seed: int, **options: Any) -> torch.nn.Module:
    import timm
    import torch

    torch.manual_seed(seed)  # --weights none, and heads a checkpoint does not cover
    try:
        return timm.create_model(name, **options)
    except (RuntimeError, KeyError, ValueError) as exc:  # timm's loader: it does not fit
        raise ReportgenError(
            f"weights for timm model {name!r} do not fit it: {_one_line(str(exc), 240)}"
        ) from exc


def _build_pretrained(
    name: str, seed: int, offline: bool
) -> tuple[torch.nn.Module, ResolvedWeights]:
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if cfg is None or not repo or getattr(cfg, "custom_load", False):
        raise ReportgenError(
            f"timm model {name!r} has no pretrained weights on the Hugging Face hub that "
            "reportgen can read; use --weights PATH or --weights none"
        )
    repo = repo.split("@")[0]
    files = (str(cfg.hf_hub_filename),) if cfg.hf_hub_filename else HUB_FILES
    path = find_hub_weights(repo, files, offline=offline, model=PREFIX + name)
    state = load_state_dict(path)
    # timm's own loader takes the tensors (its key filters, its class-count handling).
    module = _create(name, seed, pretrained=True, pretrained_cfg_overlay={"state_dict": state})
    tag = getattr(cfg, "tag", None) or ""
    label = f"timm {cfg.architecture}.{tag}" if tag else f"timm {name}"
    return module, ResolvedWeights("timm", label, path)


def _build_from_file(name: str, path: Path, seed: int) -> torch.nn.Module:
    state = load_state_dict(path)
    module = _create(name, seed, pretrained=False)
    rows = _classifier_rows(module, state)
    if rows is not None:  # a fine-tuned head: the same network with that many classes
        module = _create(name, seed, pretrained=False, num_classes=rows)
    apply_state_dict(module, state, path)
    return module


def build_timm_module(
    name: str, weights_spec: str, *, offline: bool, seed: int
) -> tuple[torch.nn.Module, ResolvedWeights]:
    """The network and what its weights are, for ``timm/NAME`` and ``--weights``."""
    bare = check_timm_name(name)
    spec = weights_spec.strip()
    if spec.lower() in ("imagenet", "default"):
        return _build_pretrained(bare, seed, offline)
    if spec.lower() == "none":
        label = f"none (random initialisation, seed {seed})"
        return _create(bare, seed, pretrained=False), ResolvedWeights("none", label, None)
    path = Path(spec).expanduser()
    if path.is_file():
        from reportgen.nn.weights import file_label

        return _build_from_file(bare, path, seed), ResolvedWeights("file", file_label(path), path)
    what = "is not a file" if path.exists() else "is neither a file nor imagenet or none"
    raise ReportgenError(
        f"weights {spec!r} for {name!r} {what} (a pretrained tag goes in the name: "
        f"-m timm/{bare.partition('.')[0]}.TAG)"
    )


def load_timm_model(
    name: str,
    weights_spec: str,
    *,
    offline: bool,
    seed: int,
    device: Any,
    model_id_: str,
    labels_file: str | None = None,
) -> LoadedModel:
    """``-m timm/NAME[=WEIGHTS]`` ready for inference, with timm's preprocessing;
    ``--labels`` replaces timm's class names."""
    from reportgen.nn.models import read_labels

    module, resolved = build_timm_module(name, weights_spec, offline=offline, seed=seed)
    notes = []
    categories = read_labels(labels_file) if labels_file else timm_categories(module)
    if categories and not labels_file and resolved.kind != "timm":
        notes.append("class names are timm's ImageNet metadata for this model's pretrained tag")
    module.eval().to(device)
    preprocessing = timm_preprocessing(module)
    return LoadedModel(model_id_, name, module, resolved, preprocessing, categories, device, notes)


def listed_models(pattern: str, from_timm: bool) -> list[str]:
    """``reportgen models [--timm] [PATTERN]``: torchvision's classifiers, or timm's
    models as ``-m`` takes them (``timm/NAME``), filtered by a glob."""
    import fnmatch

    from reportgen.nn.models import classification_models

    if from_timm:
        return [PREFIX + name for name in list_timm_models(pattern)]
    names = classification_models()
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)] if pattern else names


def module_for_listing(model: str) -> tuple[torch.nn.Module, int]:
    """``reportgen layers MODEL``: the network as ``run`` builds it with random weights
    (seed 0), and the input size its layers are traced at (timm: the model's own)."""
    import torch

    from reportgen.nn.models import build_module, check_model_name

    if is_timm(model):
        module, _ = build_timm_module(model, "none", offline=True, seed=0)
        return module.eval(), int(timm_preprocessing(module).crop_size[0])
    check_model_name(model)
    torch.manual_seed(0)
    return build_module(model), 224  # without GoogLeNet's warning


_STANDARDISED = ("StdConv2d", "StdConv2dSame", "ScaledStdConv2d", "ScaledStdConv2dSame")


def applied_conv_weight(module: torch.nn.Conv2d) -> torch.Tensor:
    """The kernel a Conv2d applies: its ``weight``, or for timm's weight-standardised
    convolutions (NFNets, BiT ResNetV2s) the standardised, scaled kernel their forward
    computes from it; filters and weights views show what the layer does."""
    import sys

    import torch.nn.functional as F

    layers = sys.modules.get("timm.layers")  # never imported for it: only timm makes them
    kinds = tuple(getattr(layers, n) for n in _STANDARDISED if hasattr(layers, n))
    if not kinds or not isinstance(module, kinds):
        return module.weight
    gain = getattr(module, "gain", None)
    affine = (gain * getattr(module, "scale", 1.0)).view(-1) if gain is not None else None
    flat = module.weight.reshape(1, module.out_channels, -1)
    standardised = F.batch_norm(
        flat, None, None, weight=affine, training=True, momentum=0.0, eps=float(module.eps)
    )
    return standardised.reshape_as(module.weight)
