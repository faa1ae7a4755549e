from pathlib import Path

import pytest

from nafft.engine.config import package_configs


def tiny_config(folder: Path, name: str, base: str, **model) -> Path:
    """A recipe on top of the shipped BASE.yaml with a width-8, two-level model and 32-pixel crops (seconds on a CPU)."""
    fields = {"width": 8, "enc_blocks": [1, 1], "dec_blocks": [1, 1], **model}
    model_yaml = ", ".join(f"{k}: {v}" for k, v in fields.items())
    path = folder / f"{name}.yaml"
    path.write_text(
        f"base: {package_configs() / (base + '.yaml')}\n"
        f"model: {{{model_yaml}}}\n"
        "data: {patch_size: 32, batch_size: 2, num_workers: 0}\n"
        "train: {channels_last: false}\n"
    )
    return path


@pytest.fixture
def tiny_configs(tmp_path) -> list[Path]:
    folder = tmp_path / "configs"
    folder.mkdir()
    return [
        tiny_config(folder, "base", "nafnet-small"),
        tiny_config(folder, "fft", "nafft-v2-small"),
    ]
