# ruff: noqa: E501  (markdown table rows read better unwrapped)
"""A model of every CNN family timm has through the real CLI, once each.

    .venv/bin/python benchmarks/timm_smoke.py                          # every family (an hour or more on 2 cores)
    .venv/bin/python benchmarks/timm_smoke.py --families resnet,convnext --out -
    .venv/bin/python benchmarks/timm_smoke.py --resume work/timm.jsonl

Each model of ``FAMILIES`` (the smallest model timm has of that family) runs as its own
process, exactly as ``models_smoke.py`` runs torchvision's::

    python -m reportgen run IMAGE -m timm/NAME --weights none --no-cache -o WORK/NAME

on one 64x64 synthetic picture, default settings otherwise (every Conv2d, Grad-CAM,
examples, every page; timm's own preprocessing, so the network sees its own input size).
The table goes to ``--out`` (default benchmarks/timm_smoke.md) with a line per family.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import models_smoke as smoke  # noqa: E402 - the runner and the table, shared

DEFAULT_OUT = HERE / "timm_smoke.md"

# (family, the model run for it): the list first, then the other CNN families of
# timm 1.0 (and a few conv-heavy hybrids, marked). Cheap models first, the large last.
FAMILIES = [
    ("resnet", "resnet18"),
    ("resnet-d", "resnet18d"),
    ("resnetv2", "resnetv2_18"),
    ("resnext", "resnext26ts"),
    ("seresnext", "seresnext26ts"),
    ("res2net", "res2net50_14w_8s"),
    ("resnest", "resnest14d"),
    ("efficientnet", "efficientnet_b0"),
    ("efficientnetv2", "tf_efficientnetv2_b0"),
    ("mobilenetv3", "mobilenetv3_small_050"),
    ("mobilenetv4", "mobilenetv4_conv_small"),
    ("ghostnet", "ghostnet_050"),
    ("mixnet", "mixnet_s"),
    ("fbnet", "fbnetc_100"),
    ("rexnet", "rexnet_100"),
    ("regnet", "regnetx_002"),
    ("convnext", "convnext_atto"),
    ("convnextv2", "convnextv2_atto"),
    ("densenet", "densenet121"),
    ("dpn", "dpn48b"),
    ("inception_v3", "inception_v3"),
    ("inception_v4", "inception_v4"),
    ("xception", "xception41"),
    ("nfnet", "nf_regnet_b0"),
    ("repvgg", "repvgg_a0"),
    ("cspnet", "cspresnet50"),
    ("darknet", "darknet17"),
    ("hrnet", "hrnet_w18_small"),
    ("vgg", "vgg11"),
    # The rest of timm's CNN families.
    ("mobilenetv1", "mobilenetv1_100"),
    ("mobilenetv2", "mobilenetv2_050"),
    ("mnasnet", "mnasnet_small"),
    ("spnasnet", "spnasnet_100"),
    ("lcnet", "lcnet_050"),
    ("tinynet", "tinynet_e"),
    ("hardcorenas", "hardcorenas_a"),
    ("efficientnet-lite", "efficientnet_lite0"),
    ("mobilenet-edgetpu", "mobilenet_edgetpu_100"),
    ("ghostnetv2", "ghostnetv2_100"),
    ("repghostnet", "repghostnet_050"),
    ("regnety", "regnety_002"),
    ("regnetz", "regnetz_b16"),
    ("resnet-rs", "resnetrs50"),
    ("resnet-t", "resnet10t"),
    ("resnetblur", "resnetblur18"),
    ("ecaresnet", "ecaresnet26t"),
    ("gcresnet", "gcresnet33ts"),
    ("skresnet", "skresnet18"),
    ("senet (legacy)", "legacy_seresnet18"),
    ("bat-resnext", "bat_resnext26ts"),
    ("wide resnet", "wide_resnet50_2"),
    ("dla", "dla34"),
    ("vovnet", "ese_vovnet19b_dw"),
    ("selecsls", "selecsls42b"),
    ("gernet", "gernet_s"),
    ("tresnet", "tresnet_m"),
    ("cs3darknet", "cs3darknet_s"),
    ("mobileone", "mobileone_s0"),
    ("hgnet", "hgnet_tiny"),
    ("hgnetv2", "hgnetv2_b0"),
    ("rdnet", "rdnet_tiny"),
    ("starnet", "starnet_s1"),
    ("inception_next", "inception_next_atto"),
    ("repvit (hybrid)", "repvit_m0_9"),
    ("fastvit (hybrid)", "fastvit_t8"),
    ("dm-nfnet", "dm_nfnet_f0"),
    ("inception_resnet_v2", "inception_resnet_v2"),
    ("senet", "senet154"),
    ("nasnet", "nasnetalarge"),
    ("pnasnet", "pnasnet5large"),
]


def run_family(
    family: str, model: str, image: Path, work: Path, args: argparse.Namespace
) -> smoke.Outcome:
    (work / "timm").mkdir(parents=True, exist_ok=True)
    outcome = smoke.run_one(f"timm/{model}", image, work, args.timeout, args.extra.split())
    outcome.model = f"{family}: timm/{model}"
    return outcome


def timm_versions() -> str:
    timm, safetensors = smoke.in_child(
        "import timm, safetensors; print(timm.__version__, safetensors.__version__)"
    ).split()
    return f"{smoke.versions()}, timm {timm}, safetensors {safetensors}"


def summary(outcomes: list[smoke.Outcome]) -> str:
    """models_smoke's line, with the families not run (--table-only) apart."""
    not_run = [o for o in outcomes if o.status == "not run"]
    line = smoke.summary([o for o in outcomes if o.status != "not run"])
    if not_run:
        line += f"; not run ({len(not_run)}): {', '.join(o.model for o in not_run)}"
    return line


def document(outcomes: list[smoke.Outcome], args: argparse.Namespace, started: str) -> str:
    total = sum(o.seconds for o in outcomes)
    lines = [
        "# A model of every timm CNN family through `reportgen run`",
        "",
        "Written by `benchmarks/timm_smoke.py`: for each CNN family of timm, its smallest "
        "model as its own process, `reportgen run small.png -m timm/NAME --weights none "
        "--no-cache -o WORK/NAME` on one 64x64 picture, default settings otherwise (every "
        "Conv2d, Grad-CAM, examples, every page; timm's own preprocessing), timeout "
        f"{args.timeout:.0f} s per model. Columns as in models_smoke.md. A model passes "
        "with exit 0 and at least one layer in its report.",
        "",
        f"* date: {started} (runs took {total / 60:.0f} min in all)",
        f"* machine: {smoke.machine()}; shared with other work, runs under `nice`",
        f"* versions: {timm_versions()}",
        f"* code: reportgen at {args.code or smoke.git_commit()}",
        "",
        summary(outcomes),
        "",
        *smoke.table(outcomes),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", help="comma-separated families or models (default: all)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per model")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="markdown file, '-' for none")
    parser.add_argument("--work-dir", help="where reports are written (default: a temp dir)")
    parser.add_argument("--extra", default="", help="more 'reportgen run' options")
    parser.add_argument("--code", help="how to describe the code under test")
    parser.add_argument("--resume", metavar="FILE.jsonl", help="keep results; skip those there")
    parser.add_argument(
        "--table-only",
        action="store_true",
        help="run nothing: write the table of --resume's results, the others as not run",
    )
    args = parser.parse_args(argv)
    wanted = {n.strip() for n in (args.families or "").split(",") if n.strip()}
    chosen = [(f, m) for f, m in FAMILIES if not wanted or f in wanted or m in wanted]
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="timm-smoke-"))
    work.mkdir(parents=True, exist_ok=True)
    image = smoke.make_image(work)
    started = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    results = Path(args.resume) if args.resume else None
    done = {o.model: o for o in smoke.load_results(results)} if results else {}
    outcomes = []
    for family, model in chosen:
        key = f"{family}: timm/{model}"
        outcome = done.get(key)
        if outcome is None and args.table_only:
            outcome = smoke.Outcome(key, "not run", 0.0, message="not run: out of time")
        elif outcome is None:
            outcome = run_family(family, model, image, work, args)
        outcomes.append(outcome)
        print(smoke.table([outcome])[2], flush=True)
        if results is not None and key not in done and not args.table_only:
            with results.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(dataclasses.asdict(outcome)) + "\n")
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    print(summary(outcomes))
    if args.out != "-":
        Path(args.out).write_text(document(outcomes, args, started), encoding="utf-8")
        print(f"wrote {args.out}")
    return 0 if all(o.passed or o.status == "not run" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
