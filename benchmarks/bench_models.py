"""Model speed targets, measured side by side in one process (on CPU, run with jemalloc keeping its freed pages, so
that page faults do not blur the ratios; see bench_malloc.py):

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1 \
        .venv/bin/python benchmarks/bench_models.py

Sections (all NAFNet-width32 scale, batch 1):
  forward  ours (NCHW and channels_last) against a straightforward NAFNet (tests/models/reference_nafnet.py) at 256x256
  fold     DO-Conv model after reparameterize() against the plain-conv model: time ratio (target <= 1.02) and max |diff|
  train    DO-Conv training step against the plain-conv one (target <= 1.15x)
  fft      FFT skips against identity skips at 256x256 (target <= 1.10x)
  tlc      TLC local pooling against global pooling at 512x512 (target <= 1.10x), and the same for the straightforward
           implementation of the official algorithm
Times are medians of interleaved runs; the ratios are what to read.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.models.reference_nafnet import RefNAFNet  # noqa: E402

from nafft.models import build_model, enable_tlc, reparameterize  # noqa: E402
from nafft.profiling import time_interleaved  # noqa: E402

SECTIONS = ("forward", "fold", "train", "fft", "tlc")


def med_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


def report(title: str, times: dict[str, list[float]], base: str) -> dict[str, float]:
    print(f"\n## {title}")
    ratios = {}
    for name, t in times.items():
        ratios[name] = med_ms(t) / med_ms(times[base])
        print(f"  {name:<34} {med_ms(t):9.1f} ms   x{ratios[name]:.3f} of {base}")
    return ratios


def infer(model, x):
    def fn():
        with torch.inference_mode():
            model(x)

    return fn


def cl(model):
    return model.to(memory_format=torch.channels_last)


def trained_looking(model):
    """Non-zero beta/gamma (zero at initialisation, which would hide every branch from the output) and D."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith((".beta", ".gamma", ".D")):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return model


def section_forward(args):
    x = torch.rand(1, 3, 256, 256)
    ours = build_model("nafnet-w32").eval()
    ref = RefNAFNet(width=32, enc=(1, 1, 1, 28)).eval()
    ref.load_state_dict(ours.state_dict())
    ours_cl = cl(build_model("nafnet-w32").eval())
    ours_cl.load_state_dict(ours.state_dict())
    times = time_interleaved(
        {
            "straightforward NAFNet (NCHW)": infer(ref, x),
            "nafft nafnet-w32 (NCHW)": infer(ours, x),
            "nafft nafnet-w32 (channels_last)": infer(ours_cl, x.contiguous(memory_format=torch.channels_last)),
        },
        runs=args.runs,
    )
    report("forward: nafnet-w32 at 256x256", times, "straightforward NAFNet (NCHW)")


def section_fold(args):
    x = torch.rand(1, 3, 256, 256)
    doconv = trained_looking(build_model("nafft-v4-w32").eval())
    with torch.no_grad():
        before = doconv(x)
    folded = reparameterize(doconv)
    plain = build_model("nafft-v4-w32").eval()
    plain = build_model(plain.config.replace(conv="conv")).eval()
    plain.load_state_dict(folded.state_dict())
    with torch.no_grad():
        diff = (folded(x) - before).abs().max().item()
    times = time_interleaved({"plain-conv nafft-v4-w32": infer(plain, x), "folded DO-Conv nafft-v4-w32": infer(folded, x)},
                             runs=args.runs)
    report("fold: DO-Conv after reparameterize, 256x256", times, "plain-conv nafft-v4-w32")
    print(f"  max |folded - unfolded| = {diff:.2e} (target <= 1e-5)")


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
    report(f"train: nafft-v4-w32 step (fwd+bwd+AdamW), batch {batch} at {size}x{size}", times, "plain-conv train step")


def section_fft(args):
    x = torch.rand(1, 3, 256, 256)
    xcl = x.contiguous(memory_format=torch.channels_last)
    base = build_model("nafnet-w32").eval()
    fft = build_model(base.config.replace(skip="fft")).eval()
    v1 = build_model("nafft-v1-w32").eval()
    v2 = build_model("nafft-v2-w32").eval()
    base_cl, fft_cl = cl(build_model(base.config).eval()), cl(build_model(fft.config).eval())
    times = time_interleaved(
        {"nafnet-w32": infer(base, x), "nafnet-w32 + FFT skips": infer(fft, x),
         "nafft-v1-w32 (ECA)": infer(v1, x), "nafft-v2-w32 (ECA + FFT skips)": infer(v2, x),
         "nafnet-w32 channels_last": infer(base_cl, xcl), "nafnet-w32 + FFT skips channels_last": infer(fft_cl, xcl)},
        runs=args.runs,
    )
    report("fft: FFT residual blocks on the skips, 256x256", times, "nafnet-w32")
    for a, b in (("nafft-v2-w32 (ECA + FFT skips)", "nafft-v1-w32 (ECA)"),
                 ("nafnet-w32 + FFT skips channels_last", "nafnet-w32 channels_last")):
        print(f"  {a} / {b} = x{med_ms(times[a]) / med_ms(times[b]):.3f}")


def section_tlc(args):
    size = args.tlc_size
    x = torch.rand(1, 3, size, size)
    glob = trained_looking(build_model("nafnet-w32").eval())
    local = enable_tlc(build_model("nafnet-w32").eval(), 256)
    ref_glob = RefNAFNet(width=32, enc=(1, 1, 1, 28)).eval()
    ref_local = RefNAFNet(width=32, enc=(1, 1, 1, 28)).eval()
    for m in (local, ref_glob, ref_local):
        m.load_state_dict(glob.state_dict())
    ref_local.to_local(256)
    with torch.no_grad():
        diff = (local(x) - ref_local(x)).abs().max().item()
    times = time_interleaved(
        {"nafft global pooling": infer(glob, x), "nafft TLC": infer(local, x),
         "straightforward global pooling": infer(ref_glob, x), "straightforward TLC (official algorithm)": infer(ref_local, x)},
        runs=args.runs,
    )
    print(f"\n## tlc: nafnet-w32 at {size}x{size}, train size 256 (max |nafft - official algorithm| = {diff:.1e})")
    for impl in ("nafft", "straightforward"):
        g = med_ms(times[f"{impl} global pooling"])
        t = med_ms(times["nafft TLC" if impl == "nafft" else "straightforward TLC (official algorithm)"])
        print(f"  {impl:<16} global {g:8.1f} ms   TLC {t:8.1f} ms   TLC overhead x{t / g:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sections", nargs="*", metavar="SECTION", help=f"some of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--train-size", type=int, default=128)
    parser.add_argument("--train-batch", type=int, default=2)
    parser.add_argument("--tlc-size", type=int, default=512)
    args = parser.parse_args()
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    jemalloc = "jemalloc" in os.environ.get("LD_PRELOAD", "")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"allocator: {'jemalloc' if jemalloc else 'default (glibc) - preload jemalloc for stable CPU timings'}")
    for name in args.sections or SECTIONS:
        globals()[f"section_{name}"](args)


if __name__ == "__main__":
    main()
