"""The main job, `nafft demo`: the ablation runner configured to synthesise data, train NAFNet and NAFFT-Net for an
equal share of a time budget and evaluate both on held-out images.

Everything runs with zero downloads on a 2-core CPU in minutes: dead-leaves images (plus scikit-image's
photographs when installed) blurred the way GoPro was made, the `*-small` CPU recipes, and `nafft eval`'s
paper-convention metrics. The output is a normal run directory per model (OUT/<model>/), OUT/summary.json and
OUT/report.md with the table, a PSNR-vs-iteration plot (OUT/psnr_curve.png) and comparison panels (OUT/panels/).
Then the bundled default model, trained by nafft for hours, is scored on the same held-out images
(`evaluate_bundled`), so that the short training can be seen next to what longer training on realistic data gives.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from nafft.atomic_files import atomic_write_text
from nafft.experiments.ablate import AblationOptions, Layout
from nafft.experiments.runs import SynthPlan, comparison_panels

log = logging.getLogger(__name__)

DEFAULT_MODELS = ("nafnet-small", "nafft-v4-small")
DEMO_LAYOUT = Layout(run_dir="{name}", summary="summary.json", report="report.md", curves="psnr_curve.png",
                     title="nafft demo")


def demo_options(out: Path = Path("runs/demo"), models: tuple[str, ...] = DEFAULT_MODELS, minutes: float = 6.0,
                 iterations: int | None = None, plan: SynthPlan | None = None, use_photos: bool = True,
                 seed: int = 42) -> AblationOptions:
    """The demo as a job of the ablation runner (`nafft.experiments.ablate.run_ablation`).

    Args:
        out: output folder (run directories, data, summary, report).
        models: recipe names (or files); each trains for the same number of iterations.
        minutes: training time budget for all models together, turned into an iteration count by timing a few
            training steps of each model on this machine first (once per output folder).
        iterations: a fixed iteration count instead of `minutes`.
        plan: the synthetic data (default `SynthPlan()`).
        use_photos: add scikit-image's photographs (when installed) to the dead-leaves images.
        seed: training seed (one run per model).
    """
    return AblationOptions(configs=tuple(models), iterations=iterations, minutes=None if iterations else minutes,
                           seeds=1, seed=seed, shared_init=False, out=Path(out), plan=plan or SynthPlan(), use_photos=use_photos,
                           checkpoints=2, eval_panels=4, comparison_panels=4, layout=DEMO_LAYOUT)


def evaluate_bundled(summary: dict[str, Any], out: Path, panels: int = 4) -> dict[str, Any] | None:
    """The bundled default model (`nafft.weights`, trained by nafft for far longer than a demo can) on the job's
    held-out images, next to the models the demo trained: its `nafft eval` in OUT/<name>/eval, per test folder
    the input and output PSNR and the images improved, blur | default model | sharp panels of the held-out
    photographs in OUT/panels/<name>/, and an entry "bundled" in OUT/summary.json and a section in the report.
    None (and a log line) when this installation has no bundled model."""
    from nafft.data.pair_folders import root_prefixes
    from nafft.engine.evaluate import evaluate_model, summarize
    from nafft.inference.opened_model import open_model
    from nafft.profiling import count_parameters
    from nafft.weights import DEFAULT_MODEL, bundled_models

    if DEFAULT_MODEL not in {m.name for m in bundled_models()}:
        log.info("no bundled default model in this installation: the demo shows only the models it trained")
        return None
    test = [Path(t) for t in summary["test"]]
    opened = open_model(DEFAULT_MODEL)
    result = evaluate_model(opened, test, out / DEFAULT_MODEL / "eval", tile=0, save_images=True, panels=0)
    per_set = {}
    for folder, prefix in zip(test, root_prefixes(test)):
        part = summarize([r for r in result.records if r.name.startswith(f"{prefix}/")])
        if part["images"]:
            per_set[folder.name] = {k: part[k] for k in ("images", "input_psnr", "psnr", "improved_images")}
    s = result.summary
    entry = {"name": DEFAULT_MODEL, "checkpoint": str(opened.path), "card_summary": opened.card.get("summary"),
             "params": count_parameters(opened.network), "psnr": s["psnr"], "ssim": s["ssim"],
             "input_psnr": s["input_psnr"], "improved_images": s["improved_images"], "images": s["images"],
             "ms_per_image": 1000 * s["seconds_per_image"], "per_set": per_set,
             "strength": "auto" if opened.guard is not None else 1.0,
             "mean_strength": sum(r.strength for r in result.records) / max(1, len(result.records))}
    bundled_run = SimpleNamespace(name=f"{DEFAULT_MODEL} (bundled)", run_dir=out / DEFAULT_MODEL)
    written = comparison_panels([bundled_run], test, out / "panels" / DEFAULT_MODEL, panels, source="test_photos")
    entry["panels"] = [str(p.relative_to(out)) for p in written]
    summary["bundled"] = entry
    atomic_write_text(out / DEMO_LAYOUT.summary, json.dumps(summary, indent=2) + "\n")
    report = out / DEMO_LAYOUT.report
    if report.is_file():
        atomic_write_text(report, report.read_text() + bundled_section(entry))
    return entry


def bundled_section(entry: dict[str, Any]) -> str:
    """The report's section on the bundled default model."""
    lines = ["", f"## The bundled default model, `{entry['name']}`", "",
             f"{entry['card_summary'] or 'The default model of `nafft deblur`.'} Not trained by this demo; the same "
             f"{entry['images']} held-out images: PSNR {entry['psnr']:.2f} dB (input {entry['input_psnr']:.2f}, "
             f"gain {entry['psnr'] - entry['input_psnr']:+.2f}), SSIM {entry['ssim']:.4f}, "
             f"{entry['improved_images']}/{entry['images']} images improved, {entry['ms_per_image']:.0f} ms per "
             "image.", "", "| test set | images | input PSNR | output PSNR | gain | improved |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in entry["per_set"].items():
        lines.append(f"| {name} | {r['images']} | {r['input_psnr']:.2f} | {r['psnr']:.2f} | "
                     f"{r['psnr'] - r['input_psnr']:+.2f} | {r['improved_images']}/{r['images']} |")
    lines += [""] + [f"![{p}]({p})" for p in entry["panels"]]
    return "\n".join(lines) + "\n"
