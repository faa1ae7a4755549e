import json
import pickle

import pytest
import torch
from benchmarks.reference.nafnet import RefNAFNet

from nafft.errors import CheckpointError
from nafft.models import ModelConfig, build_model, load_matching, load_model, read_metadata, save_model
from tests.models.conftest import TINY, randomize


def test_round_trip_through_safetensors(variant, tmp_path):
    model = randomize(build_model(variant)).eval()
    path = save_model(model, tmp_path / "m.safetensors", metadata={"note": "hello"})
    loaded = load_model(path)
    assert loaded.config == variant
    assert not loaded.training
    x = torch.rand(1, 3, 21, 26)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    meta = read_metadata(path)
    assert meta["note"] == "hello"
    assert json.loads(meta["nafft_model_config"])["attention"] == variant.attention


def test_attention_gate_survives_a_round_trip(tmp_path):
    cfg = ModelConfig(**TINY, attention="eca", attention_gate="sigmoid", eca_kernel=5)
    loaded = load_model(save_model(build_model(cfg), tmp_path / "g.safetensors"))
    assert loaded.config == cfg


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    model = build_model(ModelConfig(**TINY))
    save_model(model, tmp_path / "a.safetensors")
    save_model(model, tmp_path / "a.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]


def _official(tmp_path):
    ref = randomize(RefNAFNet(width=8, enc=(1, 2), middle=2, dec=(1, 1))).eval()
    x = torch.rand(1, 3, 19, 30)
    with torch.no_grad():
        expected = ref(x)
    return ref.state_dict(), x, expected


@pytest.mark.parametrize("layout", ["params", "params_ema", "module_prefix", "raw"])
def test_official_pth_files_load_strictly(layout, tmp_path):
    state, x, expected = _official(tmp_path)
    if layout == "module_prefix":
        obj = {"params": {f"module.{k}": v for k, v in state.items()}}
    elif layout == "raw":
        obj = state
    else:
        obj = {layout: state}
    path = tmp_path / "NAFNet-official.pth"
    torch.save(obj, path)
    model = load_model(path)
    assert model.config == ModelConfig(width=8, enc_blocks=(1, 2), middle_blocks=2, dec_blocks=(1, 1))
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)


def test_params_is_preferred_and_params_ema_can_be_chosen(tmp_path):
    state, x, _ = _official(tmp_path)
    ema = {k: v + 0.01 for k, v in state.items()}
    path = tmp_path / "both.pth"
    torch.save({"params": state, "params_ema": ema}, path)
    assert torch.equal(load_model(path).intro.weight, state["intro.weight"])
    assert torch.equal(load_model(path, param_key="params_ema").intro.weight, ema["intro.weight"])


class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    state, _, _ = _official(tmp_path)
    torch.save({"params": state, "payload": _RunsCode(marker)}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_model(path)
    assert not marker.exists()
    # The file really would run code if unpickled without weights_only (so the test can fail).
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_mismatched_weights_are_a_clear_error(tmp_path):
    path = save_model(build_model(ModelConfig(**TINY)), tmp_path / "m.safetensors")
    state, _, _ = _official(tmp_path)
    torch.save({"params": {k: v for k, v in state.items() if not k.startswith("ending")}}, tmp_path / "cut.pth")
    with pytest.raises(CheckpointError, match="missing 2 keys"):
        load_model(tmp_path / "cut.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        load_model(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "missing.pth")
    assert load_model(path).config.width == 8


def test_a_plain_pickle_file_is_refused(tmp_path):
    path = tmp_path / "list.pth"
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(CheckpointError):
        load_model(path)


def test_a_warm_start_turns_plain_convolutions_into_equal_doconv_layers(tmp_path):
    # plain NAFNet weights into the DO-Conv variant: every kernel becomes its layer's W with D at zero, so the
    # network computes what the plain one did; the tensors it lacks (none here) would keep their initialisation
    plain = randomize(build_model(ModelConfig(**TINY))).eval()
    path = save_model(plain, tmp_path / "plain.safetensors")
    doconv = randomize(build_model(ModelConfig(**TINY, conv="doconv")), seed=1).eval()
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        assert (doconv(x) - plain(x)).abs().max() > 1e-2  # different before
        loaded, left = load_matching(doconv, path)
        assert left == [] and any(name.endswith(".W") for name in loaded)
        assert all(not d.any() for name, d in doconv.state_dict().items() if name.endswith(".D"))
        torch.testing.assert_close(doconv(x), plain(x), rtol=0, atol=1e-5)
    # a file that names DO-Conv tensors itself (an ablation's shared initialisation) is taken by name only
    state = {k: v.detach().clone().contiguous() for k, v in plain.state_dict().items()}
    fresh = build_model(ModelConfig(**TINY, conv="doconv"))
    named = next(k for k in fresh.state_dict() if k.endswith(".W")).removesuffix(".W")
    state[f"{named}.W"] = state[f"{named}.weight"].flatten(2).clone()
    from safetensors.torch import save_file

    save_file(state, str(tmp_path / "named.safetensors"))
    loaded, left = load_matching(fresh, tmp_path / "named.safetensors")
    assert f"{named}.W" in loaded and sum(name.endswith(".W") for name in loaded) == 1
