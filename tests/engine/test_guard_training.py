"""Training a strength guard: it learns from the blend's log MSE to keep restorations that help and drop those that
harm, and reports per-set gains at strength 1 and under the guard."""

import torch
import torch.nn.functional as F

from nafft.engine.guard_training import (
    GuardTrainConfig,
    Restored,
    guard_gains,
    log_mse,
    measure_examples,
    summarize,
    train_guard,
)
from nafft.inference.guard import FEATURE_NAMES


def examples(count: int, seed: int) -> tuple[list[Restored], list[Restored]]:
    """Half "shaken" pairs whose restoration is nearly the sharp target, half sharp pairs whose "restoration" adds
    strong speckle (a model that invents detail, far more than shake takes away); inputs carry a little noise."""
    gen = torch.Generator().manual_seed(seed)
    kernel = torch.ones(3, 1, 1, 7) / 7  # horizontal shake
    shaken, sharp = [], []
    for i in range(count):
        target = F.avg_pool2d(torch.rand(1, 3, 48, 48, generator=gen), 5, 1, 2)[0]
        blurred = F.conv2d(F.pad(target[None], (3, 3, 0, 0), mode="replicate"), kernel, groups=3)[0]
        noise = 0.01 * torch.randn(target.shape, generator=gen)
        restored = target + 0.005 * torch.randn(target.shape, generator=gen)
        shaken.append(Restored(f"shaken{i}", (blurred + noise).half(), restored.half(), target.half()))
        invented = (target + 0.25 * torch.randn(target.shape, generator=gen)).clamp(0, 1)
        sharp.append(Restored(f"sharp{i}", (target + noise).half(), invented.half(), target.half()))
    return shaken, sharp


def test_log_mse_is_minus_the_psnr():
    a, b = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.1)
    torch.testing.assert_close(log_mse(a, b), torch.full((2,), -20.0), rtol=0, atol=1e-4)


def test_the_guard_learns_to_keep_helpful_restorations_and_drop_harmful_ones():
    shaken, sharp = examples(24, seed=0)
    val_shaken, val_sharp = examples(8, seed=1)
    config = GuardTrainConfig(width=8, epochs=60, batch=16, crops=1, crop=32, lr=1e-2, seed=0)
    features, best = measure_examples(shaken + sharp, config.crops, config.crop, config.seed)
    assert features.shape == (96, len(FEATURE_NAMES)) and best.shape == (96,)
    assert float(best[:48:2].mean()) > 0.9 and float(best[48::2].mean()) < 0.2  # wholes: shaken, then sharp
    validation = {name: (val, measure_examples(val)[0]) for name, val in (("shaken", val_shaken),
                                                                          ("sharp", val_sharp))}
    seen = []
    guard, history = train_guard(features, best, config, validation, on_epoch=seen.append, every=20)
    assert [e["epoch"] for e in history] == [20, 40, 60] and seen == history
    assert history[-1]["loss"] < history[0]["loss"]
    on_shaken, on_sharp = summarize(guard_gains(guard, val_shaken)), summarize(guard_gains(guard, val_sharp))
    assert on_shaken["strength"] > 0.8 and on_sharp["strength"] < 0.2
    assert on_sharp["full"] < -5.0 and on_sharp["guarded"] > on_sharp["full"] + 5.0  # the harm is mostly undone
    assert on_shaken["guarded"] > on_shaken["full"] - 1.0  # the help is mostly kept
    assert history[-1]["sharp"] == on_sharp


def test_restore_pairs_keeps_input_restoration_and_target_and_names_folders(tmp_path):
    import numpy as np

    from nafft.data.io import write_image
    from nafft.engine.guard_training import restore_pairs
    from nafft.inference import OpenedModel

    class Darken(torch.nn.Module):
        def forward(self, x):
            return x * 0.5

    rng = np.random.default_rng(0)
    for folder in ("a", "b"):
        for name in ("1.png", "2.png"):
            write_image(tmp_path / folder / "blur" / name, rng.random((20, 24, 3)))
            write_image(tmp_path / folder / "sharp" / name, rng.random((20, 24, 3)))
    opened = OpenedModel.from_network(Darken(), device="cpu")
    both = restore_pairs(opened, [tmp_path / "a", tmp_path / "b"], limit=1)
    assert [e.name for e in both] == ["a/1.png", "b/1.png"]
    one = restore_pairs(opened, tmp_path / "a")
    assert [e.name for e in one] == ["1.png", "2.png"]
    assert one[0].image.dtype == torch.float16 and one[0].image.shape == (3, 20, 24)
    torch.testing.assert_close(one[0].restored.float(), one[0].image.float() * 0.5, rtol=0, atol=1e-3)
    assert not torch.equal(one[0].target, one[0].image)
