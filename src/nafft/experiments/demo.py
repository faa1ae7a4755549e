"""The main job, `nafft demo`: the ablation runner configured to synthesise data, train NAFNet and NAFFT-Net for an
equal share of a time budget and evaluate both on held-out images.

Everything runs with zero downloads on a 2-core CPU in minutes: dead-leaves images (plus scikit-image's
photographs when installed) blurred the way GoPro was made, the `*-small` CPU recipes, and `nafft eval`'s
paper-convention metrics. The output is a normal run directory per model (OUT/<model>/), OUT/summary.json and
OUT/report.md with the table, a PSNR-vs-iteration plot (OUT/psnr_curve.png) and comparison panels (OUT/panels/).
"""

from __future__ import annotations

from pathlib import Path

from nafft.experiments.ablate import AblationOptions, Layout
from nafft.experiments.runs import SynthPlan

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
