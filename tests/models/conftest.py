import itertools

import pytest
import torch

from nafft.models import ModelConfig

TINY = dict(width=8, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1))

VARIANTS = [
    ModelConfig(**TINY, attention=a, conv=c, skip=s, block_fft=b)
    for a, c, s, b in itertools.product(("sca", "eca"), ("conv", "doconv"), ("identity", "fft"), (False, True))
]


def variant_id(cfg: ModelConfig) -> str:
    return f"{cfg.attention}-{cfg.conv}-{cfg.skip}" + ("-blockfft" if cfg.block_fft else "")


@pytest.fixture(params=VARIANTS, ids=variant_id)
def variant(request) -> ModelConfig:
    return request.param


def randomize(model: torch.nn.Module, seed: int = 0, std: float = 0.2) -> torch.nn.Module:
    """Give every parameter (also the zero-initialised beta, gamma and DO-Conv D) non-trivial values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * std)
    return model
