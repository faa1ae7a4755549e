from torch import nn

from nafft.models import ModelConfig, build_model
from nafft.profiling import count_macs, count_parameters, profile_model


def test_macs_of_plain_and_depthwise_convolutions():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=8))
    assert count_macs(model, (10, 12)) == 8 * 3 * 9 * 120 + 8 * 9 * 120


def test_macs_of_a_one_level_nafnet_by_hand():
    model = build_model(ModelConfig(width=8, enc_blocks=(1,), middle_blocks=0, dec_blocks=(1,)))
    hw = 16 * 16
    # per block at full resolution: conv1 8->16, depthwise 3x3 on 16, conv3 8->8, conv4 8->16, conv5 8->8;
    # plus the SCA 1x1 conv 8->8 on the pooled 1x1 map
    block = (8 * 16 + 16 * 9 + 8 * 8 + 8 * 16 + 8 * 8) * hw + 8 * 8
    intro_ending = 3 * 8 * 9 * hw + 8 * 3 * 9 * hw
    down_up = 8 * 16 * 4 * (hw // 4) + 16 * 32 * (hw // 4)  # 2x2 stride-2 conv, then 1x1 conv before PixelShuffle
    assert count_macs(model, (16, 16)) == intro_ending + down_up + 2 * block


def test_profile_reports_parameters_and_latency():
    model = build_model(ModelConfig(width=8, enc_blocks=(1,), middle_blocks=1, dec_blocks=(1,)))
    prof = profile_model(model, "tiny", size=(24, 20), runs=2, warmup=0)
    assert prof.params == count_parameters(model) == sum(p.numel() for p in model.parameters())
    assert len(prof.latency_runs) == 2 and prof.latency_ms > 0
    assert prof.peak_memory_mb > 0
