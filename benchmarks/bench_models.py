"""Model speed targets, measured side by side in one process with the malloc settings of the `nafft` command
(`nafft.malloc_tuning.tune_malloc`, applied here first):

    .venv/bin/python benchmarks/bench_models.py --threads 1 --repeat 3

Sections (all NAFNet-width32 scale, batch 1):
  forward  the default Python path (`load_model` on a saved file, then `model(x)` with an NCHW tensor: channels_last
           on the CPU) and the NCHW path (`set_memory_format(model, False)`, `--no-channels-last`) against a
           straightforward NAFNet (benchmarks/reference/nafnet.py, the official code's maths) at 256x256, that one
           also in channels_last (target: default path <= 0.80x the straightforward NCHW time)
  fold     DO-Conv model after reparameterize() against the plain-conv model: time ratio (target <= 1.02) and max |diff|
  train    DO-Conv training step against the plain-conv one (target <= 1.15x)
  fft      FFT skips against identity skips at 256x256, in the default format and in NCHW (target <= 1.10x)
  tlc      TLC local pooling against global pooling at 512x512, in the default format and in NCHW, and the same for
           the straightforward implementation of the official algorithm (target <= 1.10x)
Times are medians of interleaved runs (every candidate once per round, so drifting machine load hits all alike);
ratios are medians over the rounds of the candidate's time over the baseline's in the same round, and the fft and
tlc sections time each pair (baseline, candidate) on its own, so that a round lasts seconds, not a minute. The ratios
are what to read. `--repeat N` runs the sections N times in a row and ends with every run's ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.reference.nafnet import RefNAFNet  # noqa: E402

from nafft.malloc_tuning import tune_malloc  # noqa: E402
from nafft.models import build_model, enable_tlc, load_model, reparameterize, save_model, set_memory_format  # noqa: E402
from nafft.profiling import time_interleaved  # noqa: E402

SECTIONS = ("forward", "fold", "train", "fft", "tlc")


def med_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


def ratio(times: dict[str, list[float]], name: str, base: str) -> float:
    """The median over rounds of name's time / base's time in the same round."""
    return statistics.median(a / b for a, b in zip(times[name], times[base]))


def report(title: str, times: dict[str, list[float]], base: str) -> dict[str, float]:
    print(f"\n## {title}")
    ratios = {}
    for name, t in times.items():
        ratios[name] = ratio(times, name, base)
        print(f"  {name:<44} {med_ms(t):9.1f} ms   x{ratios[name]:.3f} of {base}")
    return ratios


def infer(model, x):
    def fn():
        with torch.inference_mode():
            model(x)

    return fn


def nchw(model):
    return set_memory_format(model, False)


def copy_of(model, **changes):
    """A model of `model`'s config (with `changes`) holding its weights (strict=False: FFT skips stay random)."""
    other = build_model(model.config.replace(**changes)).eval()
    other.load_state_dict(model.state_dict(), strict=not changes)
    return other


def trained_looking(model):
    """Non-zero beta/gamma (zero at initialisation, which would hide every branch from the output) and D."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith((".beta", ".gamma", ".D")):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return model


def section_forward(args):
    x = torch.rand(1, 3, 256, 256)  # NCHW, as a user's tensor usually is
    ours = trained_looking(build_model("nafnet-w32").eval())
    with tempfile.TemporaryDirectory() as tmp:
        default = load_model(save_model(ours, Path(tmp) / "w32.safetensors"))  # the default Python path
    ref = RefNAFNet(width=32, enc=(1, 1, 1, 28)).eval()
    ref.load_state_dict(ours.state_dict())
    ref_cl = RefNAFNet(width=32, enc=(1, 1, 1, 28)).eval().to(memory_format=torch.channels_last)
    ref_cl.load_state_dict(ours.state_dict())
    with torch.no_grad():
        diff = (default(x) - ref(x)).abs().max().item()
    times = time_interleaved(
        {
            "straightforward NAFNet (NCHW)": infer(ref, x),
            "straightforward NAFNet (channels_last)": infer(ref_cl, x.contiguous(memory_format=torch.channels_last)),
            "nafft default path (load_model, model(x))": infer(default, x),
            "nafft NCHW (--no-channels-last)": infer(nchw(copy_of(ours)), x),
        },
        runs=args.runs,
    )
    ratios = report("forward: nafnet-w32 at 256x256", times, "straightforward NAFNet (NCHW)")
    print(f"  max |default path - straightforward| = {diff:.1e}")
    return {"default path / official": ratios["nafft default path (load_model, model(x))"]}


def section_fold(args):
    x = torch.rand(1, 3, 256, 256)
    doconv = trained_looking(build_model("nafft-v4-w32").eval())
    with torch.no_grad():
        before = doconv(x)
    folded = reparameterize(doconv)
    plain = build_model(folded.config).eval()
    plain.load_state_dict(folded.state_dict())
    with torch.no_grad():
        diff = (folded(x) - before).abs().max().item()
    times = time_interleaved({"plain-conv nafft-v4-w32": infer(plain, x), "folded DO-Conv nafft-v4-w32": infer(folded, x)},
                             runs=args.runs)
    ratios = report("fold: DO-Conv after reparameterize, 256x256", times, "plain-conv nafft-v4-w32")
    print(f"  max |folded - unfolded| = {diff:.2e} (target <= 1e-5)")
    return {"folded / plain": ratios["folded DO-Conv nafft-v4-w32"]}


def section_train(args):
    size, batch = args.train_size, args.train_batch
    x = torch.rand(batch, 3, size, size)
    y = torch.rand(batch, 3, size, size)

    def step_fn(model):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def fn():
            opt.zero_grad(set_to_none=True)
            loss = (model(x) - y).abs().mean()
            loss.backward()
            opt.step()

        return fn

    doconv = build_model("nafft-v4-w32").train()
    plain = build_model(doconv.config.replace(conv="conv")).train()
    times = time_interleaved({"plain-conv train step": step_fn(plain), "DO-Conv train step": step_fn(doconv)},
                             runs=max(3, args.runs // 2))
    ratios = report(f"train: nafft-v4-w32 step (fwd+bwd+AdamW), batch {batch} at {size}x{size}", times,
                    "plain-conv train step")
    return {"DO-Conv / plain train step": ratios["DO-Conv train step"]}


def section_fft(args):
    x = torch.rand(1, 3, 256, 256)
    base = trained_looking(build_model("nafnet-w32").eval())
    fft = trained_looking(copy_of(base, skip="fft"))
    v1 = trained_looking(build_model("nafft-v1-w32").eval())
    v2 = trained_looking(copy_of(v1, skip="fft"))
    print("\n## fft: FFT residual blocks on the skips, 256x256")
    out = {}
    for key, (name_a, a), (name_b, b) in (
        ("FFT skips, default format", ("nafnet-w32", base), ("nafnet-w32 + FFT skips", fft)),
        ("v2 / v1, default format", ("nafft-v1-w32 (ECA)", v1), ("nafft-v2-w32 (ECA + FFT skips)", v2)),
        ("FFT skips, NCHW", ("nafnet-w32 NCHW", nchw(copy_of(base))), ("nafnet-w32 + FFT skips NCHW", nchw(copy_of(fft)))),
    ):
        times = time_interleaved({name_a: infer(a, x), name_b: infer(b, x)}, runs=args.runs)
        out[key] = ratio(times, name_b, name_a)
        print(f"  {name_a:<28} {med_ms(times[name_a]):8.1f} ms   {name_b:<30} {med_ms(times[name_b]):8.1f} ms   "
              f"x{out[key]:.3f}")
    return out


def section_tlc(args):
    size = args.tlc_size
    x = torch.rand(1, 3, size, size)
    glob = trained_looking(build_model("nafnet-w32").eval())
    local = enable_tlc(copy_of(glob), 256)
    ref_glob = RefNAFNet(width=32, enc=(1, 1, 1, 28)).eval()
    ref_local = RefNAFNet(width=32, enc=(1, 1, 1, 28)).eval()
    for m in (ref_glob, ref_local):
        m.load_state_dict(glob.state_dict())
    ref_local.to_local(256)
    with torch.no_grad():
        diff = (local(x) - ref_local(x)).abs().max().item()
    print(f"\n## tlc: nafnet-w32 at {size}x{size}, train size 256 (max |nafft - official algorithm| = {diff:.1e})")
    out = {}
    for label, g, t in (("nafft (default format)", glob, local),
                        ("nafft NCHW", nchw(copy_of(glob)), nchw(enable_tlc(copy_of(glob), 256))),
                        ("straightforward", ref_glob, ref_local)):
        times = time_interleaved({"global": infer(g, x), "TLC": infer(t, x)}, runs=args.runs)
        out[f"TLC, {label}"] = ratio(times, "TLC", "global")
        print(f"  {label:<24} global {med_ms(times['global']):8.1f} ms   TLC {med_ms(times['TLC']):8.1f} ms   "
              f"TLC overhead x{out[f'TLC, {label}']:.3f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sections", nargs="*", metavar="SECTION", help=f"some of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=1, help="run the sections this many times in a row")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--train-size", type=int, default=128)
    parser.add_argument("--train-batch", type=int, default=2)
    parser.add_argument("--tlc-size", type=int, default=512)
    args = parser.parse_args()
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    malloc = tune_malloc()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    preload = os.environ.get("LD_PRELOAD", "")
    allocator = "preloaded " + Path(preload).name if preload else ("glibc + nafft's mallopt" if malloc else "glibc")
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"allocator: {allocator}")
    summary = []
    for run in range(args.repeat):
        if args.repeat > 1:
            print(f"\n# run {run + 1} of {args.repeat}")
        ratios = {}
        for name in args.sections or SECTIONS:
            ratios.update(globals()[f"section_{name}"](args))
        summary.append(ratios)
    if args.repeat > 1:
        print("\n# ratios, run by run")
        for key in summary[0]:
            print(f"  {key:<32} " + "  ".join(f"x{r[key]:.3f}" for r in summary))


if __name__ == "__main__":
    main()
