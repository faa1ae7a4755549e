"""Evaluate an opened model on folders of blurred/sharp pairs: per-image metrics, a summary, a report and panels.

`evaluate_model` is the one evaluation path: `nafft eval`, the ablation's and the demo's held-out scores and the
default model's benchmark all call it.

Metrics follow `nafft.metrics` (8-bit RGB, prediction clamped and rounded as the papers do): `psnr`, `ssim` (the
MATLAB/BasicSR 2-D convention) and `ssim3d` (NAFNet's 3-D convention), for the prediction and, under `input_*`,
for the blurred input itself. The prediction is rounded to uint8 once; metrics and the saved image
(`--save-images`) use those same bytes, so metrics recomputed from the saved files give the same numbers.

Outputs in OUT/:
- `per_image.csv`: name, the six metrics, height, width, seconds (inference time), tiles (0: whole image);
- `summary.json`: the means under the same keys, the settings, timing and any bad pairs;
- `report.md`: the same for people, with best/worst images and the panels;
- `images/NAME.png` (optional), `panels/*_compare.png` (blur | prediction | sharp | error map) and
  `panels/*_fft.png` (log-magnitude spectra of blur | prediction | sharp) for a few images spread over the set.

PSNR is `inf` for an image identical to its target; means leave such values out and count them
(`psnr_identical`, `input_psnr_identical`) so that one identical pair does not make the mean infinite.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nafft.atomic_files import atomic_write_text
from nafft.data.io import image_to_tensor, read_image, write_image
from nafft.data.pair_folders import Roots, gather_pairs
from nafft.errors import UserError
from nafft.inference.opened_model import OpenedModel
from nafft.inference.predict import DEFAULT_STRENGTH, Predictor
from nafft.metrics import METRICS, mean_finite, ssim_and_ssim3d, to_uint8

log = logging.getLogger(__name__)

METRIC_KEYS = tuple(METRICS) + tuple(f"input_{k}" for k in METRICS)
CSV_COLUMNS = ("name", *METRIC_KEYS, "height", "width", "seconds", "tiles", "strength")
CONVENTIONS = {
    "psnr": "8-bit RGB, prediction clamped to [0, 1] and rounded, MSE over all pixels and channels, no border crop",
    "ssim": "MATLAB/BasicSR 2-D: per channel, 11x11 Gaussian (sigma 1.5), K1 0.01, K2 0.03, valid region, "
    "mean over channels",
    "ssim3d": "NAFNet 3-D: 11-tap Gaussian (sigma 1.5) along height, width and channels, replicate padding",
}


@dataclass
class ImageRecord:
    """Metrics and timing of one pair."""

    name: str
    metrics: dict[str, float]
    height: int
    width: int
    seconds: float
    tiles: int = 0
    strength: float = 1.0  # the blend strength applied (the guard's choice under --strength auto)

    def row(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **self.metrics,
            "height": self.height,
            "width": self.width,
            "seconds": round(self.seconds, 4),
            "tiles": self.tiles,
            "strength": round(self.strength, 4),
        }


@dataclass
class EvalResult:
    """Everything `evaluate` measured."""

    records: list[ImageRecord]
    summary: dict[str, Any]
    problems: list[str] = field(default_factory=list)


def score(pred: Any, sharp: Any, keys: Sequence[str] = tuple(METRICS)) -> dict[str, float]:
    """The `keys` metrics of one prediction against its target, on 8-bit RGB (`nafft.metrics`): the one scoring
    function of `nafft eval` and of validation during training."""
    pred_u8, sharp_u8 = to_uint8(pred), to_uint8(sharp)
    shared = {}
    if "ssim" in keys and "ssim3d" in keys:  # one filtering for both SSIMs
        shared["ssim"], shared["ssim3d"] = ssim_and_ssim3d(pred_u8, sharp_u8)
    return {key: shared[key] if key in shared else METRICS[key](pred_u8, sharp_u8) for key in keys}


def mean_scores(scores: Sequence[Mapping[str, float]], keys: Sequence[str]) -> dict[str, float | int]:
    """Per key, the mean over images; PSNR means leave identical images (PSNR inf) out and count them under
    `KEY_identical`, so that one identical pair does not make the mean infinite (only identical images: inf; no
    image: nan)."""
    means: dict[str, float | int] = {}
    for key in keys:
        mean, left_out = mean_finite(s[key] for s in scores)
        means[key] = math.inf if left_out and left_out == len(scores) else mean
        if key.endswith("psnr"):
            means[f"{key}_identical"] = left_out
    return means


def pair_metrics(pred_u8: np.ndarray, blur_u8: np.ndarray, sharp_u8: np.ndarray) -> dict[str, float]:
    """The six metrics of one pair, from 8-bit (H, W, 3) arrays."""
    return score(pred_u8, sharp_u8) | {f"input_{k}": v for k, v in score(blur_u8, sharp_u8).items()}


def summarize(records: Sequence[ImageRecord]) -> dict[str, Any]:
    """Means of every metric over the records (`mean_scores`; None where no finite mean exists), and how many
    predictions have a higher PSNR than their blurry input."""
    summary: dict[str, Any] = {"images": len(records)}
    means = mean_scores([r.metrics for r in records], METRIC_KEYS)
    summary.update({k: v if isinstance(v, int) or math.isfinite(v) else None for k, v in means.items()})
    summary["improved_images"] = sum(r.metrics["psnr"] > r.metrics["input_psnr"] for r in records)
    return summary


def _panel_indices(count: int, panels: int) -> set[int]:
    n = min(panels, count)
    if n <= 0:
        return set()
    return {round(i * (count - 1) / max(1, n - 1)) for i in range(n)}


def _safe_name(name: str) -> str:
    return name.replace("/", "__").rsplit(".", 1)[0]


def evaluate_model(
    model: OpenedModel,
    data: Roots,
    out_dir: str | Path,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    self_ensemble: bool = False,
    half: bool = False,
    memory_budget: int | None = None,
    strength: float | str = DEFAULT_STRENGTH,
    limit: int = 0,
    save_images: bool = False,
    panels: int = 4,
    settings: Mapping[str, Any] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_image: Callable[[int, int, ImageRecord], None] | None = None,
    on_tile: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Predict every pair of the folders `data` with `model`, measure, and write the CSV, summary, report and panels
    to `out_dir`.

    Args:
        model: the opened model (`nafft.inference.open_model`).
        data: one pair folder (pairs named as in it) or several (`gather_pairs`: names prefixed with the folder).
        out_dir: the output folder (created).
        tile, overlap, self_ensemble, half, memory_budget, strength: the `Predictor`'s options (tile 0: whole
            images; strength below 1 scores the blend of input and restoration, "auto" the guard's blend; the
            strength applied is a column of the CSV).
        limit: evaluate the first `limit` pairs only (0: all).
        save_images: also write every prediction to `images/NAME.png`.
        panels: number of images (spread over the set) that get comparison and FFT panels.
        settings: more to record about the run in the summary and report, after the model's and the options'.
        on_start: called with the number of pairs before the first is predicted (progress bars).
        on_image: called after each image with (index, total, record), e.g. for progress and time estimates.
        on_tile: the predictor's progress over the tiles of a large image.

    Pairs that cannot be used (a missing partner, an unreadable file, a size mismatch) are listed in the outputs
    and in `EvalResult.problems`, and the others are evaluated.

    Raises:
        UserError: a folder that holds no pairs at all, or predictor options outside their range.
    """
    pairs, problems = gather_pairs(data)
    if limit > 0:
        pairs = pairs[:limit]
    single = isinstance(data, (str, os.PathLike))
    if not pairs:
        raise UserError(f"{data if single else ', '.join(map(str, data))}: no readable image pairs")
    predictor = Predictor(model, tile=tile, overlap=overlap, self_ensemble=self_ensemble, half=half,
                          memory_budget=memory_budget, on_tile=on_tile, strength=strength)
    settings = {
        "checkpoint": str(model.path) if model.path is not None else model.name,
        "data": str(data) if single else [str(d) for d in data],
        "tlc": model.tlc,
        "tlc_train_size": model.train_size if model.tlc else None,
        "self_ensemble": self_ensemble,
        "strength": strength,
        "tile": "auto" if tile is None else ("never" if tile == 0 else tile),
        "overlap": "auto" if overlap is None else overlap,
        "device": str(model.device),
        "half": half,
    } | dict(settings or {})
    if on_start is not None:
        on_start(len(pairs))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    problems = list(problems)
    records: list[ImageRecord] = []
    chosen = _panel_indices(len(pairs), panels)
    panel_files: list[tuple[str, Path, Path]] = []
    start = time.perf_counter()
    for index, pair in enumerate(pairs):
        try:
            blur = read_image(pair.blur)
            sharp = read_image(pair.sharp)
        except UserError as exc:
            problems.append(f"unreadable: {exc}")
            continue
        if blur.rgb.shape != sharp.rgb.shape:
            problems.append(f"size mismatch: {pair.blur} and {pair.sharp}")
            continue
        tick = time.perf_counter()
        pred = predictor(image_to_tensor(blur.rgb))
        seconds = time.perf_counter() - tick
        pred_u8, blur_u8, sharp_u8 = to_uint8(pred), to_uint8(blur.rgb), to_uint8(sharp.rgb)
        tiles = predictor.last_tiles
        metrics = pair_metrics(pred_u8, blur_u8, sharp_u8)
        record = ImageRecord(pair.name, metrics, blur.height, blur.width, seconds, tiles,
                             predictor.last_strengths[0])
        records.append(record)
        if save_images:
            write_image(out_dir / "images" / (pair.name.rsplit(".", 1)[0] + ".png"), pred_u8)
        if index in chosen:
            stem = _safe_name(pair.name)
            compare, spectra = (
                out_dir / "panels" / f"{stem}_compare.png",
                out_dir / "panels" / f"{stem}_fft.png",
            )
            write_image(compare, comparison_panel(blur_u8, pred_u8, sharp_u8, record))
            write_image(spectra, fft_panel(blur_u8, pred_u8, sharp_u8))
            panel_files.append((pair.name, compare, spectra))
        if on_image is not None:
            on_image(index, len(pairs), record)
    summary = summarize(records)
    summary["seconds_per_image"] = sum(r.seconds for r in records) / len(records) if records else None
    summary["inference_seconds"] = sum(r.seconds for r in records)
    summary["total_seconds"] = time.perf_counter() - start
    summary["settings"] = dict(settings or {})
    summary["conventions"] = CONVENTIONS
    summary["problems"] = problems
    _write_csv(out_dir / "per_image.csv", records)
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    report = render_report(
        records, summary, [(n, c.relative_to(out_dir), f.relative_to(out_dir)) for n, c, f in panel_files]
    )
    atomic_write_text(out_dir / "report.md", report)
    return EvalResult(records, summary, problems)


def _format(value: float) -> str:
    return "inf" if value == math.inf else repr(float(value))


def _write_csv(path: Path, records: Sequence[ImageRecord]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in records:
        row = r.row()
        writer.writerow({k: _format(v) if k in METRIC_KEYS else v for k, v in row.items()})
    atomic_write_text(path, buffer.getvalue())


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render_report(
    records: Sequence[ImageRecord], summary: dict[str, Any], panels: Sequence[tuple[str, Path, Path]]
) -> str:
    """The Markdown report: settings, a metrics table, best and worst images, panels and problems."""
    s = summary
    lines = ["# Evaluation report", ""]
    settings = s.get("settings", {})
    if settings:
        lines += [f"- {k}: {v}" for k, v in settings.items()]
        lines.append("")
    lines += [
        f"{s['images']} images, {_fmt(s['seconds_per_image'], 3)} s per image (inference), "
        f"{_fmt(s['total_seconds'], 1)} s in all.",
        "",
        "| | PSNR (dB) | SSIM (2-D) | SSIM (3-D) |",
        "|---|---|---|---|",
        f"| prediction | {_fmt(s['psnr'], 2)} | {_fmt(s['ssim'], 4)} | {_fmt(s['ssim3d'], 4)} |",
        f"| blurred input | {_fmt(s['input_psnr'], 2)} | {_fmt(s['input_ssim'], 4)} | {_fmt(s['input_ssim3d'], 4)} |",
        "",
    ]
    identical = s.get("psnr_identical", 0) + s.get("input_psnr_identical", 0)
    if identical:
        lines += [f"PSNR means leave out {identical} identical image(s) (PSNR = inf).", ""]
    lines += ["Conventions:", ""] + [f"- {k}: {v}" for k, v in CONVENTIONS.items()] + [""]
    finite = [
        r for r in records if math.isfinite(r.metrics["psnr"]) and math.isfinite(r.metrics["input_psnr"])
    ]
    if len(finite) > 1:
        ranked = sorted(finite, key=lambda r: r.metrics["psnr"] - r.metrics["input_psnr"])
        k = min(5, len(ranked) // 2 or 1)
        lines += ["| image | PSNR | input PSNR | gain |", "|---|---|---|---|"]
        for tag, group in (("worst", ranked[:k]), ("best", ranked[::-1][:k])):
            for r in group:
                gain = r.metrics["psnr"] - r.metrics["input_psnr"]
                lines.append(
                    f"| {r.name} ({tag}) | {r.metrics['psnr']:.2f} | {r.metrics['input_psnr']:.2f} | {gain:+.2f} |"
                )
        lines.append("")
    if panels:
        lines += [
            "## Panels",
            "",
            "blur | prediction | sharp | error map (|prediction - sharp| x 4), and log-magnitude "
            "spectra of blur | prediction | sharp.",
            "",
        ]
        for name, compare, spectra in panels:
            lines += [
                f"### {name}",
                "",
                f"![{name}]({compare.as_posix()})",
                "",
                f"![{name} spectra]({spectra.as_posix()})",
                "",
            ]
    if s.get("problems"):
        lines += ["## Problems", ""] + [f"- {p}" for p in s["problems"]] + [""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ panels

PANEL_WIDTH = 384  # each cell is scaled to this width at most
MIN_CELL_WIDTH = 160
ERROR_GAIN = 4.0


def _heat(values: np.ndarray) -> np.ndarray:
    """[0, 1] -> an (H, W, 3) uint8 black-red-yellow-white ramp."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    rgb = np.clip(np.concatenate([3 * v, 3 * v - 1, 3 * v - 2], axis=-1), 0, 1)
    return np.round(rgb * 255).astype(np.uint8)


def labelled_grid(cells: Sequence[np.ndarray], labels: Sequence[str]) -> np.ndarray:
    """Same-sized uint8 RGB images side by side, each under its label, scaled to a readable panel width."""
    from PIL import Image, ImageDraw

    h, w = cells[0].shape[:2]
    # large images shrink to PANEL_WIDTH; small ones grow by a whole factor to at least MIN_CELL_WIDTH
    scale = PANEL_WIDTH / w if w > PANEL_WIDTH else float(-(-MIN_CELL_WIDTH // w))
    cw, ch = max(1, round(w * scale)), max(1, round(h * scale))
    label_h = 14
    canvas = Image.new("RGB", (len(cells) * cw + (len(cells) - 1) * 2, ch + label_h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, (cell, label) in enumerate(zip(cells, labels)):
        im = Image.fromarray(cell)
        if scale != 1.0:
            im = im.resize((cw, ch), Image.Resampling.BILINEAR if scale < 1 else Image.Resampling.NEAREST)
        x = i * (cw + 2)
        canvas.paste(im, (x, label_h))
        draw.text((x + 2, 1), label, fill=(0, 0, 0))
    return np.asarray(canvas)


def comparison_panel(
    blur: np.ndarray, pred: np.ndarray, sharp: np.ndarray, record: ImageRecord | None = None
) -> np.ndarray:
    """blur | prediction | sharp | error map, as one uint8 RGB image; the error map is |pred - sharp| x 4."""
    error = np.abs(pred.astype(np.float32) - sharp.astype(np.float32)).mean(axis=-1) / 255.0 * ERROR_GAIN
    labels = ["blur", "prediction", "sharp", f"|error| x{ERROR_GAIN:g}"]
    if record is not None:
        labels[0] = f"blur {record.metrics['input_psnr']:.2f} dB"
        labels[1] = f"prediction {record.metrics['psnr']:.2f} dB"
    return labelled_grid([blur, pred, sharp, _heat(error)], labels)


def log_spectrum(image: np.ndarray) -> np.ndarray:
    """log(1 + |FFT|) of the luma of an 8-bit RGB image, zero frequency centred."""
    luma = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(luma))))


def fft_panel(blur: np.ndarray, pred: np.ndarray, sharp: np.ndarray) -> np.ndarray:
    """Log-magnitude spectra of blur | prediction | sharp on one shared scale (motion blur shows as dark streaks)."""
    spectra = [log_spectrum(x) for x in (blur, pred, sharp)]
    lo = min(float(s.min()) for s in spectra)
    hi = max(float(s.max()) for s in spectra)
    cells = [_heat((s - lo) / max(hi - lo, 1e-12)) for s in spectra]
    return labelled_grid(cells, ["|FFT| blur", "|FFT| prediction", "|FFT| sharp"])
