"""A run's records: RUN_DIR/metrics.jsonl (one JSON object per log step and per validation) and, when asked for
and installed, TensorBoard scalars and validation panels in RUN_DIR/tb/."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from nafft.atomic_files import atomic_write_text

log = logging.getLogger(__name__)


class RunLog:
    """Appends records to metrics.jsonl; on a resume, first drops the lines a killed run wrote after `iteration`
    (its last checkpoint), so the file reads as one uninterrupted run.

    Args:
        run_dir: the run folder.
        iteration: where the run starts (0, or the resumed iteration).
        tensorboard: also write TensorBoard events (skipped, with a note, when tensorboard is not installed).
        writes: False on processes that write nothing (DDP ranks > 0).
    """

    def __init__(self, run_dir: str | Path, iteration: int, tensorboard: bool = False, writes: bool = True):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.writes = writes
        self.tb = None
        if writes:
            self._trim(iteration)
            if tensorboard:
                self.tb = _summary_writer(Path(run_dir) / "tb", iteration)

    def _trim(self, iteration: int) -> None:
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by the kill
            if int(record.get("iter", 0)) <= iteration:
                kept.append(line)
        atomic_write_text(self.path, "".join(f"{line}\n" for line in kept))

    def write(self, record: Mapping[str, Any], scalars: Iterable[str] | None = None) -> None:
        """Append `record` (with "type" and "iter"); its numeric `scalars` (default: all) go to TensorBoard as
        TYPE/KEY."""
        if not self.writes:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for key in record if scalars is None else scalars:
                value = record.get(key)
                if key not in ("type", "iter") and isinstance(value, int | float):
                    self.tb.add_scalar(f"{record['type']}/{key}", value, record["iter"])

    def panels(self, panels: Mapping[str, list[torch.Tensor]], iteration: int) -> None:
        """blur | prediction | sharp images per validated weights ("raw", "ema") to TensorBoard."""
        if self.tb is not None:
            for tag, images in panels.items():
                for i, panel in enumerate(images):
                    self.tb.add_image(f"val_{tag}/{i}_blur_pred_sharp", panel.clamp(0, 1), iteration)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None


def _summary_writer(folder: Path, iteration: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.info("tensorboard is not installed (pip install 'nafft[tb]'); logging to metrics.jsonl only")
        return None
    return SummaryWriter(log_dir=str(folder), purge_step=iteration or None)
