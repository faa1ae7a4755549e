"""The default model's figures: quality on held-out sets, and speed and memory of `nafft deblur` on photographs.

    python benchmarks/default_model.py quality --suite data/default/heldout [--checkpoint CKPT] [--set NAME=DIR]
    python benchmarks/default_model.py speed [--checkpoint CKPT]

quality: `nafft eval` (TLC as trained, EMA weights as shipped) on each pair folder (--set, or every set of a
held-out suite made by benchmarks/heldout_sets.py, --suite); per set the mean input and output PSNR, the mean,
median and worst gain, the images improved, the brightness shift, and the verdict of each floor of FLOORS (the
decision rule of docs/trust.md), as a Markdown table; OUT/quality.json keeps them, OUT/SET/ the eval outputs.
speed: `nafft deblur` of a 1280x720 and a 4000x3000 synthetic photograph (smooth shapes and texture, saved as PNG),
each in a fresh process: wall seconds, CPU seconds and peak RSS, default settings (automatic tiling).
compare: per image, the quality run in OUT against the one in --base (same --set names): mean and median PSNR
difference, images better and worse, the largest losses.
table: mean / worst-image gain per set of several quality runs (their quality.json files), one row each.
figure: blur | model | target rows from a quality run in OUT (its saved outputs): the first --set's image at the
median gain, the second's at its median, and the worst image of all, written to --figure as a JPEG for the README.
Without --checkpoint the bundled default model is measured.

    python benchmarks/default_model.py figure --set shake-11-31=data/default/heldout/shake-11-31 \\
        --set sharp-dof-real=data/default/heldout/sharp-dof-real ... --figure docs/images/x.jpg
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

MEASURE = (
    "import json, resource, subprocess, sys, time\n"
    "start = time.perf_counter(); proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(json.dumps({'maxrss_kib': usage.ru_maxrss, 'code': proc.returncode, 'cpu_s': usage.ru_utime + "
    "usage.ru_stime, 'seconds': time.perf_counter() - start, 'stderr': proc.stderr[-2000:]}))\n"
)


# The floors a default model must hold on the held-out suite before it ships (issue 19; docs/default-model.md,
# "Decision rule"): set -> (least mean gain dB, least worst-image gain dB, least share of images improved).
FLOORS = {
    "sharp-low": (-0.1, -1.0, None),
    "sharp-dof-real": (-0.1, -1.0, None),
    "sharp-dof-synth": (-0.1, -1.0, None),
    "tremor-3-9": (0.5, -1.0, None),
    "shake-11-31": (1.0, None, 0.9),
    "shake-11-31-jpeg80": (0.8, None, None),
}
DO_NO_HARM = ("sharp-low", "sharp-dof-real", "sharp-dof-synth", "tremor-3-9")


def suite_sets(suite: Path) -> list[str]:
    """NAME=FOLDER of every pair folder in a held-out suite (`benchmarks/heldout_sets.py`), in its order."""
    from heldout_sets import SETS

    folders = {p.name for p in suite.iterdir() if (p / "blur").is_dir() and (p / "sharp").is_dir()}
    ordered = [n for n in SETS if n in folders] + sorted(folders - set(SETS))
    return [f"{n}={suite / n}" for n in ordered]


def set_statistics(rows: list[dict], out_images: Path, folder: Path) -> dict:
    """Mean, median and worst PSNR gain, share improved and brightness shift (output minus target, mean 8-bit
    level) of one set's per-image rows; the outputs are read back from OUT/SET/images."""
    from nafft.data.io import read_image

    gains = [r["gain"] for r in rows]
    shifts = []
    for r in rows:
        output = read_image(out_images / (r["name"].rsplit(".", 1)[0] + ".png")).rgb.astype(np.float64)
        target = read_image(folder / "sharp" / r["name"].split("/")[-1]).rgb.astype(np.float64)
        shifts.append(255.0 * float(output.mean() - target.mean()))  # read_image gives [0, 1]
    worst = min(rows, key=lambda r: r["gain"])
    return {"images": len(rows), "input_psnr": float(np.mean([float(r["input_psnr"]) for r in rows])),
            "psnr": float(np.mean([float(r["psnr"]) for r in rows])), "gain": float(np.mean(gains)),
            "median_gain": float(np.median(gains)), "worst_gain": worst["gain"], "worst_image": worst["name"],
            "best_gain": max(gains), "improved": sum(g > 0 for g in gains), "brightness_shift": float(np.mean(shifts)),
            "largest_brightness_shift": float(max(shifts, key=abs)),
            "strength": float(np.mean([float(r.get("strength") or 1.0) for r in rows]))}


def floor_verdicts(results: dict) -> dict[str, str]:
    """Per floor of FLOORS whose set was measured: "holds" or what misses it, by how much."""
    verdicts = {}
    for name, (mean, worst, share) in FLOORS.items():
        if name not in results:
            continue
        r = results[name]
        misses = []
        if mean is not None and r["gain"] < mean:
            misses.append(f"mean {r['gain']:+.2f} < {mean:+.1f}")
        if worst is not None and r["worst_gain"] < worst:
            misses.append(f"worst {r['worst_gain']:+.2f} < {worst:+.1f}")
        if share is not None and r["improved"] < share * r["images"]:
            misses.append(f"improved {r['improved']}/{r['images']} < {share:.0%}")
        verdicts[name] = "holds" if not misses else "MISSED: " + "; ".join(misses)
    return verdicts


def harm_shortfall(results: dict) -> float | None:
    """The replacement rule's distance from the do-no-harm floors (docs/trust.md): the summed shortfall, in dB, of
    the mean and the worst-image gain below their floors on the DO_NO_HARM sets; None when a set is missing."""
    if any(name not in results for name in DO_NO_HARM):
        return None
    total = 0.0
    for name in DO_NO_HARM:
        mean, worst, _ = FLOORS[name]
        total += max(0.0, mean - results[name]["gain"]) + max(0.0, worst - results[name]["worst_gain"])
    return total


def quality(args) -> dict:
    from nafft.engine.evaluate import evaluate_model
    from nafft.inference import open_model

    model = open_model(args.checkpoint, device="cpu", guard=args.guard)
    strength = 1.0 if args.strength is None else args.strength
    results = {}
    for spec in args.set:
        name, folder = spec.split("=", 1)
        evaluate_model(model, Path(folder), args.out / name, panels=args.panels, save_images=True,
                       strength=strength)
        results[name] = {"folder": folder, **set_statistics(per_image(args.out, name), args.out / name / "images",
                                                           Path(folder))}
        print(json.dumps({name: results[name]}), flush=True)
    checkpoint = model.path
    verdicts = floor_verdicts(results)
    lines = [f"checkpoint {checkpoint.name}; TLC {'on' if model.tlc else 'off'} (train size {model.train_size}); "
             f"strength {strength}",
             "", "| set | images | input PSNR | output PSNR | gain dB | median | worst (image) | improved | "
             "brightness shift | strength | floor |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['images']} | {r['input_psnr']:.2f} | {r['psnr']:.2f} | {r['gain']:+.2f} | "
                     f"{r['median_gain']:+.2f} | {r['worst_gain']:+.2f} ({r['worst_image'].split('/')[-1]}) | "
                     f"{r['improved']}/{r['images']} | {r['brightness_shift']:+.2f} | {r['strength']:.2f} | "
                     f"{verdicts.get(name, '')} |")
    if verdicts:
        held = [n for n, v in verdicts.items() if v == "holds"]
        harmless = all(verdicts.get(n) == "holds" for n in DO_NO_HARM if n in verdicts)
        lines += ["", f"floors held: {len(held)}/{len(verdicts)}; do-no-harm floors "
                      f"{'all hold' if harmless else 'NOT all held'}"]
    print("\n".join(lines))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(json.dumps({"checkpoint": str(checkpoint), "strength": strength,
                                                       "sets": results,
                                                       "floors": verdicts}, indent=2) + "\n")
    (args.out / "quality.md").write_text("\n".join(lines) + "\n")
    return results


def test_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A photograph-like uint8 image: smooth colour gradients, soft shapes and fine texture."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[:height, :width].astype(np.float32)
    image = np.stack([0.5 + 0.3 * np.sin(xs / (width / 3) + c) * np.cos(ys / (height / 2) - c) for c in (0, 1, 2)], -1)
    for _ in range(60):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(10, min(height, width) / 6)
        inside = (ys - cy) ** 2 + (xs - cx) ** 2 < r * r
        image[inside] = image[inside] * 0.4 + rng.uniform(0, 1, 3) * 0.6
    image += rng.normal(0, 0.03, image.shape).astype(np.float32)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def speed(args) -> dict:
    from nafft.data.io import write_image

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for height, width in ((720, 1280), (3000, 4000)):
            src = Path(tmp) / f"photo_{width}x{height}.png"
            write_image(src, test_photo(height, width))
            cmd = [sys.executable, "-m", "nafft", "deblur", str(src), "-o", str(Path(tmp) / "out"), "--device", "cpu"]
            if args.checkpoint:
                cmd += ["--checkpoint", args.checkpoint]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            if args.strength is not None:
                cmd += ["--strength", str(args.strength)]
            proc = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True,
                                  env=dict(os.environ))
            report = json.loads(proc.stdout.strip().splitlines()[-1])
            if report["code"]:
                print(report["stderr"], file=sys.stderr)
            key = f"{width}x{height}"
            results[key] = {"seconds": report["seconds"], "cpu_seconds": report["cpu_s"],
                            "peak_rss_mib": report["maxrss_kib"] / 1024, "exit_code": report["code"]}
            print(f"deblur {key} ({width * height / 1e6:.1f} MP): {report['seconds']:.1f} s wall, "
                  f"{report['cpu_s']:.1f} s CPU, peak RSS {report['maxrss_kib'] / 1024:.0f} MiB "
                  f"(exit {report['code']})", flush=True)
    return results


def per_image(run: Path, name: str) -> list[dict]:
    """The rows of a quality run's NAME/per_image.csv, each with its PSNR gain over the input as "gain"."""
    with open(run / name / "per_image.csv", newline="") as f:
        return [{**r, "gain": float(r["psnr"]) - float(r["input_psnr"])} for r in csv.DictReader(f)]


def figure(args) -> None:
    """The README's picture, blur | model | sharp, from the outputs a quality run saved in OUT (labelled with
    --checkpoint's file name, or nafft-photo without one): the sets' images at
    the median gain of the first --set (the shake), at the median gain of the second (sharp photographs with a
    blurred background: should come back unchanged), and the worst image of all --set sets."""
    from nafft.data.io import read_image, write_image
    from nafft.engine.evaluate import labelled_grid
    from nafft.metrics import to_uint8

    label = Path(args.checkpoint).stem if args.checkpoint else "nafft-photo"
    if args.strength is not None:
        label += f" (strength {args.strength})"
    sets = dict(spec.split("=", 1) for spec in args.set)
    if args.suite is not None:  # the suite's shake first, then its sharp photographs with real blurred backgrounds
        first = [n for n in ("shake-11-31", "sharp-dof-real") if n in sets]
        sets = {n: sets[n] for n in [*first, *(n for n in sets if n not in first)]}
    rows = {name: sorted(per_image(args.out, name), key=lambda r: r["gain"]) for name in sets}
    names = list(sets)
    chosen = [(names[0], rows[names[0]][len(rows[names[0]]) // 2], "median gain")]
    if len(names) > 1:
        chosen.append((names[1], rows[names[1]][len(rows[names[1]]) // 2], "median gain"))
    worst_set = min(names, key=lambda n: rows[n][0]["gain"])
    chosen.append((worst_set, rows[worst_set][0], "worst image of all sets"))
    grids = []
    for name, row, which in chosen:
        file_name = row["name"].split("/")[-1]
        blur = read_image(Path(sets[name]) / "blur" / file_name).rgb
        output = read_image(args.out / name / "images" / (row["name"].rsplit(".", 1)[0] + ".png")).rgb
        sharp = read_image(Path(sets[name]) / "sharp" / file_name).rgb
        grids.append(labelled_grid([to_uint8(x) for x in (blur, output, sharp)],
                                   [f"{name}: input {float(row['input_psnr']):.2f} dB ({which})",
                                    f"{label} {float(row['psnr']):.2f} dB ({row['gain']:+.2f})", "target"]))
    width = max(g.shape[1] for g in grids)
    grids = [np.pad(g, ((0, 0), (0, width - g.shape[1]), (0, 0)), constant_values=255) for g in grids]
    write_image(args.figure, np.concatenate(grids, axis=0), quality=90)
    print(f"{args.figure}: " + ", ".join(f"{n}/{r['name'].split('/')[-1]}" for n, r, _ in chosen))


def table(args) -> None:
    """Mean / worst-image gain per set of several quality runs (their quality.json, one row each), as Markdown, and
    each run's summed shortfall from the do-no-harm floors (`harm_shortfall`) where it measured those sets."""
    runs = {Path(path).parent.name if Path(path).name == "quality.json" else Path(path).stem:
            json.loads(Path(path).read_text()) for path in args.runs}
    names = list(dict.fromkeys(n for r in runs.values() for n in r["sets"]))
    if args.set:  # only these sets, in this order
        names = [spec.split("=", 1)[0] for spec in args.set]
    shortfalls = {label: harm_shortfall(run["sets"]) for label, run in runs.items()}
    with_shortfall = any(v is not None for v in shortfalls.values())
    print("| run | " + " | ".join(f"`{n}`" for n in names) + (" | do-no-harm shortfall |" if with_shortfall else " |"))
    print("|---|" + "---:|" * (len(names) + with_shortfall))
    for label, run in runs.items():
        cells = [f"{run['sets'][n]['gain']:+.2f} / {run['sets'][n]['worst_gain']:+.2f}" if n in run["sets"] else ""
                 for n in names]
        if with_shortfall:
            cells.append("" if shortfalls[label] is None else f"{shortfalls[label]:.2f}")
        print(f"| {label} | " + " | ".join(cells) + " |")


def compare(args) -> None:
    """Per image, the candidate quality run (--out) against a base one (--base), on the sets named by --set."""
    import statistics

    for spec in args.set:
        name = spec.split("=", 1)[0]
        base, candidate = ({r["name"]: r["gain"] for r in per_image(run, name)} for run in (args.base, args.out))
        if base.keys() != candidate.keys():
            raise SystemExit(f"{name}: the two runs scored different images")
        diff = sorted((candidate[k] - base[k], k) for k in base)
        values = [d for d, _ in diff]
        print(f"{name}: {len(values)} images, candidate - base PSNR: mean {statistics.mean(values):+.3f} dB, median "
              f"{statistics.median(values):+.3f} dB; better on {sum(d > 0 for d in values)}, worse on "
              f"{sum(d < 0 for d in values)}; largest losses " + ", ".join(f"{k} {d:+.2f}" for d, k in diff[:5]))


def main() -> int:
    from nafft.cli.args import strength

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("section", choices=("quality", "speed", "figure", "compare", "table"))
    parser.add_argument("runs", nargs="*", help="table: quality.json files (or copies of them) to tabulate")
    parser.add_argument("--checkpoint", help="weights to measure (default: the bundled default model)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=FOLDER", help="quality: a pair folder")
    parser.add_argument("--suite", type=Path, help="quality: every set of a held-out suite (heldout_sets.py)")
    parser.add_argument("--panels", type=int, default=4, help="quality: comparison panels per set")
    parser.add_argument("--guard", type=Path, help="quality: the guard that --strength auto asks (default: a bundled "
                        "model's own)")
    parser.add_argument("--strength", type=strength, default=None,
                        help="nafft's --strength, a number or auto (quality: default 1; speed: default nafft "
                             "deblur's, auto)")
    parser.add_argument("--threads", type=int, default=None, help="speed: --threads of nafft deblur")
    parser.add_argument("--out", type=Path, default=Path("runs/default_model"))
    parser.add_argument("--figure", type=Path, default=Path("docs/images/default_model.jpg"), help="figure: output")
    parser.add_argument("--base", type=Path, help="compare: the quality run (its --out) to compare --out against")
    args = parser.parse_args()
    if args.suite is not None:
        args.set += suite_sets(args.suite)
    if args.section == "table":
        table(args)
        return 0
    if args.section in ("quality", "figure", "compare") and not args.set:
        parser.error(f"{args.section} needs at least one --set NAME=FOLDER")
    if args.section == "compare":
        if args.base is None:
            parser.error("compare needs --base RUN (a quality run's --out)")
        compare(args)
        return 0
    if args.section == "figure":
        figure(args)
        return 0
    results = (quality if args.section == "quality" else speed)(args)
    if args.section == "speed":
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "speed.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
