"""`nafft train`: train or resume a run from a YAML config; one process, or DDP under torchrun."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from pathlib import Path

from nafft.cli.args import add_threads_argument
from nafft.errors import UserError

HELP = "train a model from a YAML config (torchrun --nproc_per_node=N -m nafft train ... for several GPUs)"

log = logging.getLogger("nafft.train")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", metavar="CONFIG",
                        help="a recipe name (nafnet-small, nafft-v2-w32, ...: see `nafft configs`) or a YAML file; "
                             "optional with --resume")
    parser.add_argument("-o", "--out", type=Path, required=True, metavar="RUN_DIR",
                        help="run folder (checkpoints, logs)")
    parser.add_argument(
        "--resume", action="store_true", help="continue from RUN_DIR's newest checkpoint (a fresh start if none)"
    )
    parser.add_argument(
        "--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
        help="override config keys, e.g. --set train.iterations=1000 data.batch_size=8",
    )
    parser.add_argument("--init", metavar="WEIGHTS",
                        help="start a new run from these weights (every tensor whose name and shape match; fresh "
                             "optimizer and schedule), e.g. the bundled default model's file; = --set model.init=...")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (log lines instead)")
    add_threads_argument(parser)


class TrainProgress:
    """A tqdm bar with it/s, ETA, loss and lr; when the bar is off (no terminal) log lines replace it."""

    def __init__(self, enabled: bool, desc: str | None = None):
        self.enabled = enabled
        self.desc = desc
        self.bar = None
        self.val_bar = None

    def on_start(self, start: int, total: int, run_dir: Path) -> None:
        from tqdm import tqdm

        if start:
            log.info("resuming at iteration %d of %d", start, total)
        self.bar = tqdm(total=total, initial=start, unit="it", desc=self.desc, dynamic_ncols=True,
                        disable=not self.enabled or None)

    def on_step(self, iteration: int, stats: dict) -> None:
        if self.bar is not None and not self.bar.disable:
            self.bar.update(iteration - self.bar.n)
            if math.isfinite(stats["loss"]):
                self.bar.set_postfix(loss=f"{stats['loss']:.4f}", lr=f"{stats['lr']:.2e}", refresh=False)

    def on_log(self, record: dict) -> None:
        if self.bar is None or self.bar.disable:
            speed = record.get("it_per_s")
            log.info(
                "iteration %d: loss %.4f, lr %.3g%s",
                record["iter"], record.get("loss", math.nan), record["lr"],
                f", {speed:.2f} it/s" if speed else "",
            )

    def on_validation_progress(self, done: int, total: int) -> None:
        """A second, transient bar over the validation images; its time is left out of the training rate and ETA."""
        from tqdm import tqdm

        if self.bar is None or self.bar.disable:
            if done == 0:
                log.info("validating (%d image passes)", total)
            return
        if self.val_bar is None:
            self.val_bar = tqdm(total=total, unit="img", desc="validate", dynamic_ncols=True, leave=False)
        self.val_bar.update(done - self.val_bar.n)
        if done >= total:
            self.val_bar.close()
            self.val_bar = None
            self.bar.unpause()  # restart the training bar's clock: validation time is not training speed

    def on_validation(self, record: dict) -> None:
        pass  # the trainer logs validation results

    def on_checkpoint(self, iteration: int, path: Path) -> None:
        pass

    def on_end(self, summary: dict) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: argparse.Namespace) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from nafft.engine.config import find_config, load_config
    from nafft.engine.trainer import train

    config_path = find_config(args.config) if args.config is not None else None
    if config_path is None:
        saved = args.out / "config.yaml"
        if not (args.resume and saved.is_file()):
            raise UserError("-c/--config is required (it may be left out only with --resume on a run folder)")
        config_path = saved
    overrides = [*args.overrides, *([f"model.init={args.init}"] if args.init else [])]
    config = load_config(config_path, overrides)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    if not main_rank:
        logging.getLogger().setLevel(logging.WARNING)
    progress = TrainProgress(enabled=main_rank and not args.no_progress)
    with logging_redirect_tqdm():
        summary = train(config, args.out, resume=args.resume, callback=progress)
    if main_rank:
        val = summary.get("validation")
        best = summary.get("best")
        parts = [f"finished iteration {summary['iteration']}"]
        if val:
            parts.append(f"validation PSNR {val['psnr']:.2f} dB, SSIM {val['ssim']:.4f}")
        if best:
            parts.append(f"best {best['psnr']:.2f} dB at iteration {best['iter']} ({best['weights']} weights)")
        if summary.get("nonfinite_total"):
            parts.append(f"{summary['nonfinite_total']} non-finite steps skipped")
        print("; ".join(parts), file=sys.stdout)
        print(f"weights: {args.out / 'checkpoints' / 'last.safetensors'}", file=sys.stdout)
    return 0
