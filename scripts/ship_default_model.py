"""Put a trained model into the package as the bundled default, with its model card.

    python scripts/ship_default_model.py --run runs/nafft-photo --quality runs/default_model/quality.json \\
        [--speed runs/default_model/speed.json] [--checkpoint runs/nafft-photo/checkpoints/last_ema.safetensors]

Writes src/nafft/weights/nafft-photo.safetensors (the EMA weights stored as float16: half the size, outputs within
float rounding of float32, loaded back into float32) whose metadata carries the card (`nafft models` prints it),
and docs/default-model.md, the same card for people, with the measured alternatives (`--alternative`, kept out
of the weight file) beside it. The card is built from the run folder (config, iterations,
training time from metrics.jsonl), the training data's synth.json files and the figures of
benchmarks/default_model.py; nothing in it is typed by hand. A run warm-started from another run's weights
(`model.init`) is described as the last of its stages, each stage read from its weight file's metadata and its
run folder (`--recipe`, once per stage, names the recipes, first to last).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def training_hours(run: Path, until: int) -> float:
    """Hours of training steps up to iteration `until` (from the logged rates: log_every / it_per_s per record),
    validation excluded."""
    seconds, last = 0.0, 0
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("type") == "train" and record.get("it_per_s") and last < record["iter"] <= until:
            seconds += (record["iter"] - last) / record["it_per_s"]
            last = record["iter"]
    return seconds / 3600


def training_stages(checkpoint: Path, run: Path) -> list[dict]:
    """The training behind a weight file of `run`, first stage to last: each stage's run folder, config, iteration
    and weights (raw or EMA), following `model.init` (a warm start) back through the weight files' metadata to a
    random initialisation, to weights that nafft did not train (recorded as the first stage's start), or to
    weights shipped before, whose card's stages come first as they were described ({"described": card stage})."""
    from nafft.models import read_metadata
    from nafft.models.checkpoint import ITERATION_KEY
    from nafft.weights import CARD_KEY

    stages, path, external = [], checkpoint, None
    while path is not None:
        if not path.is_file():
            raise SystemExit(f"{path}: the weights a stage started from are missing; cannot describe its training")
        metadata = read_metadata(path)
        shipped = json.loads(metadata.get(CARD_KEY, "{}"))
        if stages and shipped.get("training"):  # weights shipped before: their card describes their stages
            stages[0]["shipped_from"] = {"file": str(path), "name": shipped.get("name", path.stem)}
            return [*({"described": t} for t in shipped["training"]), *stages]
        if "nafft_train_config" not in metadata:
            if not stages:
                raise SystemExit(f"{path}: no nafft training config in its metadata; not a nafft run's weights")
            external = path.name
            break
        config = json.loads(metadata["nafft_train_config"])
        stages.insert(0, {"run": run if not stages else path.parent.parent, "config": config,
                          "iteration": int(metadata.get(ITERATION_KEY, 0)),
                          "weights": metadata.get("nafft_weights", "raw")})
        init = config["model"].get("init")
        path = Path(init) if init else None
    stages[0]["external_init"] = external
    return stages


def stage_card(stage: dict, recipe: str, previous: dict | None) -> dict:
    from nafft.engine.config import LOSS_TERMS

    if "shipped_from" in stage:
        start = (f"the {stage['shipped_from']['name']} weights shipped after the stages above (kept in "
                 f"{stage['shipped_from']['file']})")
    elif previous is None:
        start = stage.get("external_init")
    else:
        start = f"the {previous['weights']} weights of {previous['run'].name} at iteration {previous['iteration']:,}"
    config = stage["config"]
    return {
        "run": stage["run"].name,
        "recipe": f"{recipe} (src/nafft/configs/{recipe}.yaml)",
        "iterations": stage["iteration"], "planned_iterations": config["train"]["iterations"],
        "crop": config["data"]["patch_size"], "batch": config["data"]["batch_size"],
        "loss": {k: v for k, v in config["loss"].items() if k in LOSS_TERMS and v > 0},
        "optimizer": config["optim"], "schedule": config["schedule"], "ema": config["train"]["ema"],
        "weights": stage["weights"],
        "init": start,
        "hours": round(training_hours(stage["run"], stage["iteration"]), 2),
        "machine": f"{platform.machine()} CPU, 1 torch thread, torch {torch.__version__}",
    }


def data_card(config: dict) -> list[dict]:
    sets = []
    for folder in config["data"]["train"]:
        manifest = json.loads((Path(folder) / "synth.json").read_text())
        photos = sorted(Path(p).name for p in manifest.pop("photos", []))
        count = len(list((Path(folder) / "blur").glob("*.png")))
        sets.append({"folder": Path(folder).name, "pairs": count, "photographs": photos,
                     **{k: v for k, v in manifest.items() if k != "nafft_synth"}})
    return sets


def describe_score(r: dict) -> str:
    return (f"{r['gain']:+.2f} dB ({r['input_psnr']:.2f} -> {r['psnr']:.2f}), worst image {r['worst_gain']:+.2f}, "
            f"{r['improved']}/{r['images']} improved")


def unchanged(target: Path, tensors: dict, meta: dict) -> bool:
    """Whether `target` already holds exactly these tensors and this metadata."""
    from safetensors.torch import load_file

    from nafft.models import read_metadata

    if not target.is_file() or read_metadata(target) != meta:
        return False
    old = load_file(str(target))
    return old.keys() == tensors.keys() and all(torch.equal(old[k], tensors[k]) for k in tensors)


def guard_summary(quality_path: Path) -> str:
    quality = json.loads(quality_path.read_text())
    sets, held = quality["sets"], sum(v == "holds" for v in quality["floors"].values())
    return (f"; at the default strength, auto (its guard chooses per image): camera shake "
            f"{describe_score(sets['shake-11-31'])}, sharp low-noise photographs {describe_score(sets['sharp-low'])}, "
            f"{held}/{len(quality['floors'])} floors hold")


def guard_card(path: Path, quality_path: Path, name: str) -> dict:
    """What the model card says of the guard shipped beside the weights: how it was trained and what it scored."""
    from nafft.inference.guard import read_guard_card

    trained = read_guard_card(path)
    quality = json.loads(quality_path.read_text())
    return {"file": f"weights/guards/{name}.safetensors", "default": True,
            "pairs": trained.get("pairs", []), "measurements": trained.get("training_measurements"),
            "config": trained.get("config", {}), "validation": trained.get("validation", {}),
            "ceiling": trained.get("ceiling", 1.0), "ceiling_reason": trained.get("ceiling_reason", ""),
            "scores_detail": quality["sets"], "floors": quality["floors"],
            "command": ("python scripts/train_guard.py --model nafft-photo --pairs ... --val ... --crops 1"
                        + (f" --ceiling {trained['ceiling']:g}" if trained.get("ceiling", 1.0) < 1.0 else "")
                        + " (scripts/default_model.sh has them)")}


def describe_cell(r: dict | None) -> str:
    return "" if r is None else f"{r['gain']:+.2f} / {r['worst_gain']:+.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, help="default: RUN/checkpoints/last_ema.safetensors")
    parser.add_argument("--quality", type=Path, required=True, help="quality.json of benchmarks/default_model.py")
    parser.add_argument("--speed", type=Path, help="speed.json of benchmarks/default_model.py")
    parser.add_argument("--name", default="nafft-photo")
    parser.add_argument("--recipe", action="append", default=[], metavar="NAME",
                        help="the recipe of each training stage, first to last (default: nafft-photo for each)")
    parser.add_argument("--guard", type=Path, help="the model's strength guard (scripts/train_guard.py), shipped "
                        "beside it as weights/guards/NAME.safetensors")
    parser.add_argument("--guard-quality", type=Path, help="quality.json of the suite at --strength auto with --guard")
    parser.add_argument("--alternative", action="append", default=[], metavar="LABEL=QUALITY_JSON",
                        help="a measured candidate that was not shipped, shown beside the shipped one in the docs")
    args = parser.parse_args()

    from safetensors.torch import load_file, save_file

    from nafft.atomic_files import atomic_write
    from nafft.models import load_model, read_metadata
    from nafft.profiling import count_macs, count_parameters
    from nafft.weights import CARD_KEY

    checkpoint = args.checkpoint or args.run / "checkpoints" / "last_ema.safetensors"
    metadata = read_metadata(checkpoint)
    stages = training_stages(checkpoint, args.run)
    fresh = [stage for stage in stages if "described" not in stage]
    recipes = args.recipe or ["nafft-photo"] * len(fresh)
    if len(recipes) != len(fresh):
        raise SystemExit(f"--recipe: {len(recipes)} given for {len(fresh)} new training stages "
                         f"({', '.join(stage['run'].name for stage in fresh)})")
    training = [stage["described"] for stage in stages if "described" in stage]
    for i, (stage, recipe) in enumerate(zip(fresh, recipes)):
        training.append(stage_card(stage, recipe, fresh[i - 1] if i else None))
    config = fresh[-1]["config"]
    model = load_model(checkpoint)
    arch = {k: v for k, v in config["model"].items() if k not in ("init",)}
    quality = json.loads(args.quality.read_text())
    if "sets" not in quality:
        raise SystemExit(f"{args.quality}: not a held-out suite's quality.json (benchmarks/default_model.py quality "
                         "--suite)")
    speed = json.loads(args.speed.read_text()) if args.speed else {}
    if (args.guard is None) != (args.guard_quality is None):
        raise SystemExit("--guard and --guard-quality go together")
    iterations = sum(t["iterations"] for t in training)
    sets = quality["sets"]
    gains = {name: describe_score(r) for name, r in sets.items()}
    held = sum(v == "holds" for v in quality["floors"].values())
    card = {
        "name": args.name,
        "summary": (f"NAFNet width {arch['width']}, {count_parameters(model) / 1e6:.1f} M parameters, trained by "
                    f"nafft for {iterations:,} iterations in {len(training)} stage(s) on synthetic blur of "
                    f"photographs; held-out photographs: camera shake 11-31 px "
                    f"{gains.get('shake-11-31', 'not measured')}; sharp low-noise photographs "
                    f"{gains.get('sharp-low', 'not measured')}; {held}/{len(quality['floors'])} floors hold"
                    + (guard_summary(args.guard_quality) if args.guard else "")),
        "architecture": {**arch, "parameters": count_parameters(model),
                         "gmacs_256x256": round(count_macs(model.eval(), (256, 256)) / 1e9, 3)},
        "training": training,
        "data": data_card(config),
        "scores": gains,
        "scores_detail": sets,
        "floors": quality["floors"],
        "speed": speed,
        **({"guard": guard_card(args.guard, args.guard_quality, args.name)} if args.guard else {}),
        "alternatives": {label: json.loads(Path(path).read_text())["sets"]
                         for label, _, path in (a.partition("=") for a in args.alternative)},
        "commands": {
            "data and training": "scripts/default_model.sh",
            "scores": "python benchmarks/default_model.py quality --checkpoint CKPT --suite data/default/heldout",
            "speed": "python benchmarks/default_model.py speed",
            "ship": (f"python scripts/ship_default_model.py --run runs/{fresh[-1]['run'].name} --checkpoint CKPT "
                     "--quality runs/default_model/quality.json --speed runs/default_model/speed.json"
                     + "".join(f" --recipe {recipe}" for recipe in recipes)
                     + (" --guard runs/guard/nafft-photo.safetensors --guard-quality runs/default_model_auto/quality.json"
                        if args.guard else "")),
        },
    }
    tensors = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in load_file(str(checkpoint)).items()}
    # the weight file's card describes these weights; the measured alternatives are for the docs page only (so
    # that adding one leaves the file alone)
    shipped_card = {k: v for k, v in card.items() if k != "alternatives"}
    meta = {**metadata, CARD_KEY: json.dumps(shipped_card), "nafft_dtype": "float16"}
    target = REPO / "src" / "nafft" / "weights" / f"{args.name}.safetensors"
    if unchanged(target, tensors, meta):  # safetensors orders metadata at random: rewriting would change the bytes
        print(f"{target}: weights and card as shipped, file left as it is")
    else:
        atomic_write(target, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
    if args.guard:
        from nafft.inference.guard import load_guard, read_guard_card, save_guard

        guard_target = target.parent / "guards" / f"{args.name}.safetensors"
        guard_target.parent.mkdir(exist_ok=True)
        save_guard(load_guard(args.guard), guard_target, {**read_guard_card(args.guard), "model": args.name,
                                                          "test_suite": card["guard"]["scores_detail"]})
        print(f"{guard_target}: the guard of {args.name}")
    size = target.stat().st_size / 2**20
    if size > 16:
        raise SystemExit(f"{target}: {size:.1f} MiB, over the 16 MiB limit for shipped weights")
    shipped = load_model(target)
    x = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))  # the same figure every time
    with torch.no_grad():
        diff = (shipped(x) - model(x)).abs().max().item()
    (REPO / "docs" / "default-model.md").write_text(render(card, size, diff))
    print(f"{target}: {size:.1f} MiB, float16 vs float32 output max |diff| {diff:.1e}")
    return 0


def describe_stages(stages: list[dict]) -> list[str]:
    """One paragraph per training stage, first to last."""
    paragraphs = []
    for i, t in enumerate(stages):
        stopped = (f"It was stopped at iteration {t['iterations']:,} of the {t['planned_iterations']:,} its schedule "
                   "plans (learning rate still high). " if t["iterations"] < t["planned_iterations"] else "")
        start = t["init"] or "a random initialisation"
        head = f"Stage {i + 1} (`{t['run']}`), recipe" if len(stages) > 1 else "Recipe"
        paragraphs += [f"{head} `{t['recipe']}`: {t['iterations']:,} iterations of batch {t['batch']} random "
                       f"{t['crop']}x{t['crop']} crops, loss {t['loss']}, AdamW lr {t['optimizer']['lr']} (cosine to "
                       f"{t['schedule']['eta_min']}, {t['schedule']['warmup_iters']} warm-up), EMA {t['ema']}, started "
                       f"from {start}. {stopped}{t['hours']} hours of training steps on {t['machine']} (a 2-core "
                       "AMD EPYC VM shared with other jobs).", ""]
    if len(stages) > 1:
        paragraphs.append(f"{sum(t['hours'] for t in stages):.2f} hours of training steps in all.")
    return paragraphs[:-1] if paragraphs[-1] == "" else paragraphs


def render(card: dict, size: float, diff: float) -> str:
    t, a = card["training"], card["architecture"]
    last = t[-1]
    lines = [f"# The default model: `{card['name']}`", "",
             "Bundled inside the package (`src/nafft/weights/`, no download): `nafft deblur photo.jpg -o out` and "
             "`nafft eval` use it when `--checkpoint` is left out; from Python `nafft.load_default_model()`; "
             "`nafft models` prints this card from the weight file's metadata. Generated by "
             "`scripts/ship_default_model.py`.", "",
             card["summary"] + ".", "",
             "## Architecture", "",
             f"NAFNet (one U-Net of NAF blocks, `sca` attention, plain skips), width {a['width']}, encoder blocks "
             f"{a['enc_blocks']}, middle {a['middle_blocks']}, decoder {a['dec_blocks']}: {a['parameters']:,} "
             f"parameters, {a['gmacs_256x256']} GMACs at 256x256. Stored as float16 ({size:.1f} MiB; outputs within "
             f"{diff:.0e} of the float32 weights), run in float32. TLC at the training crop size.", "",
             "## Training", "",
             *describe_stages(t),
             "", "## Data", "",
             "Synthetic pairs from `nafft synth` ([data](data.md#nafft-synth-training-pairs-without-downloads)), "
             "its realistic generator unless the blur is `shake`, made by `scripts/default_model.sh`:", ""]
    for d in card["data"]:
        photos = f" from {len(d['photographs'])} photographs ({', '.join(d['photographs'])})" if d["photographs"] \
            else " (dead leaves)"
        focus = (f", out-of-focus scenes {d.get('soft', 0)} (disc radius {d.get('soft_radius', [1.0, 4.0])} px, bokeh "
                 f"{d.get('bokeh', 0)})" if d.get("soft") else "")
        if d["blur"] == "shake":  # the random-walk kernels take none of the camera options
            from nafft.data.synth.motion import SHAKE_EXTENT_PX

            low, high = (d.get("strength", 1.0) * px for px in SHAKE_EXTENT_PX)
            lines.append(f"- `{d['folder']}`: {d['pairs']:,} pairs of {d['size']}x{d['size']}{photos}; blur shake "
                         f"(random-walk kernels, largest extent {low:g}-{high:g} px, in linear light; sRGB, Gaussian "
                         "noise, 8 bits; none of the camera options).")
            continue
        lines.append(f"- `{d['folder']}`: {d['pairs']:,} pairs of {d['size']}x{d['size']}{photos}; blur {d['blur']}, "
                     f"long {d['long_motion']}, still {d['still']}, log-uniform lengths {d.get('log_uniform', 0)}, "
                     f"defocus {d['defocus']}{focus}, noise gain {d.get('noise_gain', [0.25, 4.0])}, saturation "
                     f"{d['saturation']}, response {d['response']}, JPEG {d['jpeg']} at {d['jpeg_quality']}.")
    lines += ["", "Photographs come only from packages' sample images and Debian wallpaper packages "
              "(`scripts/sharp_photos.py`), split by photograph: the test photographs (chelsea, coffee, rocket, "
              "grace_hopper, flower, Path, Kleiber) and the validation ones (china, Kite) never appear in training.",
              "", "## Scores", "",
              "The held-out suite ([judging the default model](trust.md)): views of 384x288 of the test "
              "photographs, `python benchmarks/default_model.py quality --suite data/default/heldout` (TLC on, CPU). "
              "Gains in dB; brightness shift in 8-bit levels (output minus target); floors from the decision rule:",
              ""]
    tables = [("At strength 1 (the network's full restoration):", card["scores_detail"], card["floors"])]
    if card.get("guard"):
        g = card["guard"]
        tables.insert(0, ("At the default strength, `auto`: the guard (`nafft/weights/guards/`, [automatic "
                          "strength](trust.md#automatic-strength-the-guard)) chooses each image's strength"
                          + (f", at most {g['ceiling']:g}" if g.get("ceiling", 1.0) < 1.0 else "")
                          + "; the strength column is its mean per set:", g["scores_detail"], g["floors"]))
    for title, scores, floors in tables:
        lines += [title, "", "| set | input PSNR | output PSNR | gain | median | worst image | improved | brightness | "
                  "strength | floor |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for name, r in scores.items():
            lines.append(f"| `{name}` | {r['input_psnr']:.2f} | {r['psnr']:.2f} | {r['gain']:+.2f} | "
                         f"{r['median_gain']:+.2f} | {r['worst_gain']:+.2f} | {r['improved']}/{r['images']} | "
                         f"{r['brightness_shift']:+.2f} | {r.get('strength', 1.0):.2f} | {floors.get(name, '')} |")
        lines.append("")
    lines.pop()
    if card.get("alternatives"):
        names = [n for n in card["scores_detail"] if n in card["floors"]]
        lines += ["", "Measured and not shipped (mean / worst-image gain in dB on the floors' sets; same suite and "
                  "command):", "", "| weights | " + " | ".join(f"`{n}`" for n in names) + " |",
                  "|---|" + "---:|" * len(names)]
        shipped = {f"{card['name']} (shipped), strength 1": card["scores_detail"]}
        if card.get("guard"):
            shipped = {f"{card['name']} (shipped), strength auto (default)": card["guard"]["scores_detail"], **shipped}
        for label, scores in {**shipped, **card["alternatives"]}.items():
            lines.append(f"| {label} | " + " | ".join(describe_cell(scores.get(n)) for n in names) + " |")
    lines += ["", "## Reproduce", "", "From the repository root (`scripts/default_model.sh` makes the photographs, every "
              "pair folder and the held-out suites, and trains the stages; the shipped weights are the "
              f"{'EMA' if last['weights'] == 'ema' else 'raw'} weights of {last['run']} at iteration "
              f"{last['iterations']:,}):", "", "```bash", "scripts/default_model.sh runs/nafft-photo",
              "python benchmarks/default_model.py quality --checkpoint CKPT --suite data/default/heldout "
              "--out runs/default_model",
              "python benchmarks/default_model.py speed --out runs/default_model",
              *(["python benchmarks/default_model.py quality --strength auto --guard runs/guard/nafft-photo.safetensors "
                 "--suite data/default/heldout --out runs/default_model_auto"] if card.get("guard") else []),
              ("python benchmarks/default_model.py figure --suite data/default/heldout --out runs/default_model_auto "
               "--strength auto --figure docs/images/default_model_suite.jpg" if card.get("guard") else
               "python benchmarks/default_model.py figure --suite data/default/heldout --out runs/default_model "
               "--figure docs/images/default_model_suite.jpg"),
              card["commands"]["ship"], "```", "",
              "On one GPU, `make default-model-gpu` makes the same data, trains the recipe `nafft-photo-gpu` from these "
              "weights (`--init`) for at most 7.5 minutes (`train.max_minutes`) and scores the result on the same "
              "suite; it has not yet run on a GPU (none has been available to this project)."]
    if card["speed"]:
        lines += ["", "## Speed", "", "`python benchmarks/default_model.py speed` (`nafft deblur` in a fresh process, "
                  "default settings: 2 torch threads, automatic tiling"
                  + (", strength auto (the guard's measurements included)" if card.get("guard") else "")
                  + "; the 2-core AMD EPYC VM above with its other jobs paused):", ""]
        for key, s in card["speed"].items():
            lines.append(f"- {key}: {s['seconds']:.1f} s wall, {s['cpu_seconds']:.1f} s CPU, peak RSS "
                         f"{s['peak_rss_mib']:.0f} MiB")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
