import json

from nafft.cli import main
from nafft.models import ModelConfig, build_model, save_model


def test_profile_a_preset_as_json(capsys):
    assert main(["profile", "nafnet-small", "--size", "32x48", "--runs", "1", "--warmup", "0", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (result,) = out["results"]
    assert result["params"] == 1_256_115
    assert result["size"] == [32, 48]
    assert result["macs"] > 0


def test_profile_a_checkpoint_folds_doconv(tmp_path, capsys):
    cfg = ModelConfig(width=8, enc_blocks=(1,), middle_blocks=1, dec_blocks=(1,), conv="doconv")
    model = build_model(cfg)
    path = save_model(model, tmp_path / "tiny.safetensors")
    assert main(["profile", str(path), "--size", "16", "--runs", "0"]) == 0
    text = capsys.readouterr().out
    plain = sum(p.numel() for p in build_model(cfg.replace(conv="conv")).parameters())
    assert f"tiny: {plain:,} parameters (DO-Conv folded; {sum(p.numel() for p in model.parameters()):,}" in text


def test_unknown_model_is_one_line_error(capsys):
    assert main(["profile", "nafnet-w23", "--runs", "0"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "nafft: error: 'nafnet-w23' is neither a bundled model (nafft-photo), a preset nor an existing checkpoint file "
        "(did you mean 'nafnet-w32'?)"
    ]
