"""Validation during training, scored as `nafft eval` scores (`nafft.engine.evaluate.score` and `mean_scores`).

Every process scores its share of the validation images (image j on rank j mod world_size) and the per-image scores
are gathered, so no process idles at a barrier through a long validation and one process validates everything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from nafft.engine import distributed as dist_utils
from nafft.engine.evaluate import mean_scores, score

METRICS = ("psnr", "ssim")


class Validator:
    """Scores models on a `PairedEvalDataset`; the blurry input's scores (the bar a model has to clear) once.

    Args:
        dataset: the validation pairs.
        device: where the models run.
        dist: the process group (`nafft.engine.distributed.DistInfo`).
        max_images: validate on the first N images only (0: all).
        channels_last: feed the models channels_last inputs.
        panels: blur | prediction | sharp images kept per model (for TensorBoard).
        progress: `(done, total)` image passes of a whole validation, called per image (0 at the start).
    """

    def __init__(self, dataset, device: torch.device, dist, max_images: int = 0, channels_last: bool = False,
                 panels: int = 0, progress: Callable[[int, int], None] | None = None):
        self.dataset, self.device, self.dist = dataset, device, dist
        self.max_images, self.channels_last, self.panels = max_images, channels_last, panels
        self.progress = progress or (lambda done, total: None)
        self.input_scores: dict[str, float] | None = None

    def indices(self) -> range:
        """This process's validation images."""
        count = min(len(self.dataset), self.max_images) if self.max_images else len(self.dataset)
        return range(self.dist.rank, count, self.dist.world_size)

    def __call__(self, models: Mapping[str, nn.Module]) -> tuple[dict[str, Any], dict[str, list[torch.Tensor]]]:
        """Scores of every model ({"raw": ..., "ema": ...}) and of the input, and the panels of each model.

        Returns:
            ({"input_psnr", "input_ssim", "psnr", "ssim", "images", "ema_psnr", "ema_ssim"}, {tag: panels}).
        """
        progress = [0, (len(models) + (self.input_scores is None)) * len(self.indices())]
        self.progress(*progress)
        if self.input_scores is None:
            means = self._mean_scores(None, [], progress)
            self.input_scores = {"input_psnr": means["psnr"], "input_ssim": means["ssim"]}
        record: dict[str, Any] = dict(self.input_scores)
        panels: dict[str, list[torch.Tensor]] = {}
        for tag, model in models.items():
            means = self._mean_scores(model, panels.setdefault(tag, []), progress)
            prefix = "" if tag == "raw" else f"{tag}_"
            record |= {f"{prefix}psnr": means["psnr"], f"{prefix}ssim": means["ssim"], "images": means["images"]}
        return record, panels

    @torch.no_grad()
    def _mean_scores(self, model: nn.Module | None, panels: list, progress: list[int]) -> dict[str, float]:
        """`model` None scores the blurry input itself."""
        scores = []
        was_training = model is not None and model.training
        if model is not None:
            model.eval()
        try:
            for index in self.indices():
                item = self.dataset[index]
                pred = item["blur"]
                if model is not None:
                    blur = item["blur"].unsqueeze(0).to(self.device)
                    if self.channels_last:
                        blur = blur.contiguous(memory_format=torch.channels_last)
                    pred = model(blur).float().clamp_(0, 1)[0].cpu()
                scores.append(score(pred, item["sharp"], METRICS))
                if len(panels) < self.panels:
                    panels.append(torch.cat([item["blur"], pred, item["sharp"]], dim=-1))
                progress[0] += 1
                self.progress(*progress)
        finally:
            if model is not None:
                model.train(was_training)
        scores = [s for part in dist_utils.all_gather_objects(scores, self.dist) for s in part]
        return mean_scores(scores, METRICS) | {"images": len(scores)}
