import torch
from torch import nn

from nafft.models import ModelConfig

TINY = dict(width=8, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1))


def randomize(model: nn.Module, seed: int = 0, std: float = 0.1) -> nn.Module:
    """Non-trivial values for every parameter (beta, gamma and DO-Conv D start at zero)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * std)
    return model


def on_cpu(network: nn.Module):
    """A network in memory opened for inference on the CPU (`OpenedModel.from_network`)."""
    from nafft.inference import OpenedModel

    return OpenedModel.from_network(network, device="cpu")


def tiny_config(**changes) -> ModelConfig:
    return ModelConfig(**TINY, **changes)


class LocalNet(nn.Module):
    """A small U-shaped conv net without any global operation: receptive field radius 1 + 2 * 3 + 1 = 10 px.

    It pads to a multiple of 4 like NAFNet (zeros right/bottom, cropped back), so tiles must sit on that grid.
    """

    padder_size = 4

    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.down = nn.Conv2d(8, 16, 2, stride=2)
        self.body = nn.Conv2d(16, 16, 3, padding=1)
        self.down2 = nn.Conv2d(16, 16, 2, stride=2)
        self.up = nn.Sequential(nn.Conv2d(16, 64, 1), nn.PixelShuffle(4))
        self.tail = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, x):
        h, w = x.shape[-2:]
        x = nn.functional.pad(x, (0, (-w) % 4, 0, (-h) % 4))
        y = torch.relu(self.head(x))
        y = torch.relu(self.body(torch.relu(self.down(y))))
        y = self.up(torch.relu(self.down2(y)))
        return (self.tail(y) + x)[:, :, :h, :w]


def save_tiny_checkpoint(path, patch_size: int = 32, **changes):
    """A randomised tiny model saved as a nafft checkpoint whose training config says `patch_size`."""
    import json

    from nafft.models import build_model, save_model

    model = randomize(build_model(tiny_config(**changes)), std=0.05).eval()
    save_model(model, path, metadata={"nafft_train_config": json.dumps({"data": {"patch_size": patch_size}})})
    return path
