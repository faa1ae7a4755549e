"""Typed config helpers (nafft.typed_config) and the training config (nafft.engine.config)."""

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from nafft.engine.config import (
    TrainConfig,
    build_config,
    find_config,
    load_config,
    package_configs,
    recipe_names,
)
from nafft.errors import ConfigError, UserError
from nafft.typed_config import apply_overrides, dump_yaml, from_dict, load_yaml, suggest, to_dict

CONFIGS = package_configs()


@dataclass
class Inner:
    rate: float = 0.1
    size: tuple[int, int] = (2, 3)


@dataclass
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)


def test_from_dict_types_and_nested_unknown_key():
    obj = from_dict(Outer, {"name": "y", "inner": {"rate": "1e-3", "size": [4, 5]}})
    assert obj == Outer("y", Inner(1e-3, (4, 5)))
    with pytest.raises(ConfigError, match=r"unknown key 'inner\.rte' \(did you mean 'inner\.rate'\?\)"):
        from_dict(Outer, {"inner": {"rte": 1}})
    with pytest.raises(ConfigError, match=r"inner\.size: expected 2 values, got 3"):
        from_dict(Outer, {"inner": {"size": [1, 2, 3]}})
    assert suggest("nmae", ["name", "inner"]) == " (did you mean 'name'?)"
    assert suggest("zzz", ["name"]) == ""


def test_overrides_parse_yaml_values():
    out = apply_overrides({"a": {"b": 1}}, ["a.b=2e-3", "a.c=[1, 2]", "d.e=true"])
    # YAML 1.1 reads "2e-3" as a string; the typed float field accepts it.
    assert out == {"a": {"b": "2e-3", "c": [1, 2]}, "d": {"e": True}}
    assert from_dict(Inner, {"rate": out["a"]["b"]}).rate == 2e-3
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides({}, ["novalue"])


def test_yaml_round_trip(tmp_path):
    path = tmp_path / "c.yaml"
    dump_yaml(Outer("z", Inner(0.5, (1, 2))), path)
    assert load_yaml(path) == {"name": "z", "inner": {"rate": 0.5, "size": [1, 2]}}
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML at line"):
        load_yaml(tmp_path / "bad.yaml")


# --- the training config ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optimm.lr=1"], r"unknown key 'optimm' \(did you mean 'optim'\?\)"),
        (["optim.weight_decy=0"], r"unknown key 'optim\.weight_decy' \(did you mean 'optim\.weight_decay'\?\)"),
        (["train.iteration=5"], r"unknown key 'train\.iteration' \(did you mean 'train\.iterations'\?\)"),
        (["loss.charbonier=1"], r"unknown key 'loss\.charbonier' \(did you mean 'loss\.charbonnier'\?\)"),
        (["model.widht=8"], r"unknown key 'model\.widht' \(did you mean 'model\.width'\?\)"),
        (["data.batchsize=8"], r"unknown key 'data\.batchsize' \(did you mean 'data\.batch_size'\?\)"),
    ],
)
def test_unknown_keys_name_the_dotted_key_and_the_closest(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_config({}, overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.iterations=abc"], r"train\.iterations: expected an integer, got 'abc'"),
        (["train.channels_last=maybe"], r"train\.channels_last: 'maybe' does not fit: expected true or false.*'auto'"),
        (["optim.betas=[0.9]"], r"optim\.betas: expected 2 values, got 1"),
        (["train.amp=fp8"], r"train\.amp: 'fp8' is not one of 'none', 'bf16', 'fp16'"),
        (["loss.fft_mode=modulos"], r"loss\.fft_mode: 'modulos' is not one of .*did you mean 'modulus'"),
        (["optim.lr=-1"], r"optim\.lr must be positive, got -1"),
        (["train.ema=1.5"], r"train\.ema is a decay in \(0, 1\)"),
        (["loss.psnr=0"], r"loss: every weight is 0"),
        (["loss.fft=-0.1"], r"loss\.fft: a weight must not be negative"),
        (["schedule.warmup_iters=10", "train.iterations=10"], r"schedule\.warmup_iters \(10\) must be below"),
        (["schedule.name=step"], r"schedule\.name: 'step' is not one of 'cosine', 'constant'"),
        (["model.preset=nafnet-w23"], r"model\.preset: unknown model preset 'nafnet-w23' \(did you mean"),
        (["model.attention=ecaa"], r"model: attention: unknown name 'ecaa' \(did you mean 'eca'\?\)"),
        (["data.patch_size=4"], r"data\.patch_size must be at least 8"),
    ],
)
def test_bad_types_and_values(overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        build_config({}, overrides)
    assert isinstance(info.value, UserError)
    assert "\n" not in str(info.value)


def test_error_names_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("optim:\n  lr: 1e-3\n  betaz: [0.9, 0.9]\n")
    with pytest.raises(ConfigError, match=r"run\.yaml: unknown key 'optim\.betaz' \(did you mean 'optim\.betas'\?\)"):
        load_config(path)


def test_official_recipe_values():
    w32 = load_config(CONFIGS / "nafnet-w32.yaml")
    assert w32.model["preset"] == "nafnet-w32" and w32.model["width"] == 32
    assert w32.model["enc_blocks"] == [1, 1, 1, 28] and w32.model["dec_blocks"] == [1, 1, 1, 1]
    assert (w32.data.batch_size, w32.data.patch_size, w32.train.iterations) == (32, 256, 200_000)
    assert (w32.optim.lr, w32.optim.weight_decay, w32.optim.betas) == (1e-3, 1e-3, (0.9, 0.9))
    assert (w32.optim.clip_grad_norm, w32.schedule.name, w32.schedule.eta_min) == (0.01, "cosine", 1e-7)
    assert w32.schedule.warmup_iters == 0 and w32.loss.weights() == {"psnr": 1.0}
    w64 = load_config(CONFIGS / "nafnet-w64.yaml")
    assert (w64.model["width"], w64.data.batch_size, w64.train.iterations) == (64, 64, 400_000)
    assert w64.optim == w32.optim and w64.schedule == w32.schedule


def test_variant_configs_differ_from_their_recipe_only_where_the_notes_say():
    for size in ("w32", "w64", "small"):
        base = to_dict(load_config(CONFIGS / f"nafnet-{size}.yaml"))
        for v, loss in (
            ("v1", {"psnr": 1.0}),
            ("v2", {"psnr": 1.0, "fft": 0.05}),
            ("v3", {"psnr": 1.0, "fft": 0.01}),
            ("v4", {"l1": 1.0}),
        ):
            cfg = load_config(CONFIGS / f"nafft-{v}-{size}.yaml")
            assert cfg.model["preset"] == f"nafft-{v}-{size}"
            assert cfg.loss.weights() == loss
            got = to_dict(cfg)
            for section in ("data", "optim", "schedule", "train"):
                assert got[section] == base[section], (v, size, section)


def test_every_config_file_loads_and_small_ones_fit_a_cpu():
    files = sorted(CONFIGS.glob("*.yaml"))
    assert len(files) >= 16  # the 15 of the notes and the default model's nafft-photo
    for path in files:
        cfg = load_config(path)
        if path.stem.endswith("-small"):
            assert cfg.data.patch_size <= 128 and cfg.data.batch_size <= 16 and cfg.train.iterations <= 5000
    # the default model's later recipes: the same architecture (a warm start loads every tensor); the GPU one
    # stops within 8 minutes
    cpu, gpu = load_config(CONFIGS / "nafft-photo.yaml"), load_config(CONFIGS / "nafft-photo-gpu.yaml")
    stages = [load_config(CONFIGS / f"nafft-photo-stage{n}.yaml") for n in (2, 3, 4)]
    assert all(stage.model_config() == cpu.model_config() == gpu.model_config() for stage in stages)
    assert all(stage.model["init"] for stage in stages)
    assert 0 < gpu.train.max_minutes <= 8 and gpu.train.amp == "bf16"


def test_base_chain_and_overrides(tmp_path):
    (tmp_path / "a.yaml").write_text("model: {preset: nafnet-small}\ntrain: {iterations: 100, seed: 3}\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\ntrain: {iterations: 50}\n")
    cfg = load_config(tmp_path / "b.yaml", ["train.log_every=7"])
    assert (cfg.train.iterations, cfg.train.seed, cfg.train.log_every) == (50, 3, 7)
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="loops back"):
        load_config(tmp_path / "loop.yaml")
    (tmp_path / "missing.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(ConfigError, match=r"missing\.yaml: base config 'nowhere\.yaml' not found"):
        load_config(tmp_path / "missing.yaml")


def test_resolved_config_round_trips_and_spells_out_the_model(tmp_path):
    cfg = build_config({"model": {"preset": "nafft-v2-small", "width": 8}, "data": {"train": "x"}})
    assert cfg.model["width"] == 8 and cfg.model["skip"] == "fft" and cfg.model["attention"] == "eca"
    assert cfg.data.train == ("x",)
    path = tmp_path / "resolved.yaml"
    path.write_text(cfg.to_yaml())
    again = load_config(path)
    assert again == cfg
    assert yaml.safe_load(cfg.to_yaml())["model"]["preset"] == "nafft-v2-small"
    assert TrainConfig().model_config().width == 32


def test_recipes_are_package_data_found_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert CONFIGS.parent.name == "nafft" and len(recipe_names()) >= 16
    assert find_config("nafnet-small") == CONFIGS / "nafnet-small.yaml"
    assert find_config("nafnet-small.yaml") == CONFIGS / "nafnet-small.yaml"
    # the repository layout of before the move still works for scripts
    assert find_config("configs/nafft-photo.yaml") == CONFIGS / "nafft-photo.yaml"
    assert load_config("nafft-v2-small").loss.fft == 0.05  # the base chain is followed inside the package
    # a project's own ./configs comes first, and a path is taken as it is
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "nafnet-small.yaml").write_text("model: nafnet-w32\n")
    assert find_config("nafnet-small") == Path("configs/nafnet-small.yaml")
    own = tmp_path / "mine.yaml"
    own.write_text("model: nafnet-small\n")
    assert find_config(own) == own
    with pytest.raises(ConfigError, match=r"config 'nafnet-smal': .* \(did you mean 'nafnet-small'\?\)"):
        find_config("nafnet-smal")
    with pytest.raises(ConfigError, match="config 'elsewhere/nafnet-small.yaml': not a file"):
        find_config("elsewhere/nafnet-small.yaml")  # only a bare name or configs/NAME is looked up


def test_configs_command_lists_shows_and_copies_a_standalone_recipe(tmp_path, monkeypatch, capsys):
    from nafft.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["configs"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == recipe_names()
    assert any(line.startswith("nafnet-small ") and "CPU" in line for line in listed)
    assert main(["configs", "show", "nafft-v4-small"]) == 0
    assert capsys.readouterr().out == (CONFIGS / "nafft-v4-small.yaml").read_text()
    assert main(["configs", "show", "nafft-v4-small", "--resolved"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == to_dict(load_config("nafft-v4-small"))

    assert main(["configs", "copy", "nafft-v4-small", "mine/"]) == 0
    copied = tmp_path / "mine" / "nafft-v4-small.yaml"
    assert copied.read_text().startswith("# Variant 4")
    assert "base" not in yaml.safe_load(copied.read_text())  # needs no other file
    assert to_dict(load_config(copied)) == to_dict(load_config("nafft-v4-small"))
    assert main(["configs", "copy", "nafnet-small", "mine/own.yaml"]) == 0  # no base: copied verbatim
    assert (tmp_path / "mine" / "own.yaml").read_text() == (CONFIGS / "nafnet-small.yaml").read_text()
    capsys.readouterr()
    assert main(["configs", "copy", "nafnet-small", "mine/own.yaml"]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["configs", "copy", "nafnet-small", "mine/own.yaml", "--force"]) == 0


def test_changed_settings_leave_out_settings_added_later_at_their_default():
    from nafft.engine.config import changed_settings

    new = to_dict(build_config({"model": {"preset": "nafnet-small"}, "data": {"train": "x"}}))
    old = {s: dict(v) for s, v in new.items()}
    del old["train"]["max_minutes"]  # a run made before train.max_minutes existed
    assert changed_settings(old, new) == []
    capped = {**new, "train": {**new["train"], "max_minutes": 5.0}}
    assert changed_settings(old, capped) == ["train.max_minutes"]
    longer = {**new, "train": {**new["train"], "iterations": 7}}
    assert changed_settings(new, longer) == ["train.iterations"]
    del old["model"]["conv"]  # model keys always count
    assert changed_settings(old, new) == ["model.conv"]
