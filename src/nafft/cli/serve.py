"""`nafft serve`: the local web app (needs the extra `pip install "nafft[app]"`)."""

from __future__ import annotations

import argparse
import sys

from nafft.cli.args import add_threads_argument, device, non_negative_int, positive_float, positive_int

HELP = "a local web app: drop photographs, compare models and strengths, download the results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", action="append", default=[], metavar="CKPT",
        help="a model to offer beside the bundled ones: a nafft .safetensors, an official NAFNet .pth or a bundled "
             "name (repeat for several; the first is preselected)"
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every network)")
    parser.add_argument("--port", type=non_negative_int, default=8765, help="port (default 8765; 0: a free one)")
    parser.add_argument("--device", type=device, default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    parser.add_argument("--tlc", action=argparse.BooleanOptionalAction, default=True,
                        help="TLC local pooling with each model's training patch size; default on")
    parser.add_argument("--max-megapixels", type=positive_float, default=50.0, metavar="MP",
                        help="refuse larger images (default 50)")
    parser.add_argument("--queue", type=positive_int, default=64, metavar="N",
                        help="images that may wait at once; more are refused until some are done (default 64)")
    parser.add_argument("--keep-minutes", type=positive_float, default=60.0, metavar="M",
                        help="results are deleted this long after they are done (default 60)")
    add_threads_argument(parser)


def run(args: argparse.Namespace) -> int:
    import ipaddress

    from nafft.errors import UserError

    try:
        from nafft.app.server import bind, build_app, make_server
    except ImportError as exc:
        raise UserError(f"nafft serve needs the app extra ({exc.name} is missing): pip install 'nafft[app]'") from None
    from PIL import Image as PILImage

    from nafft.app.jobs import JobQueue, offered_models

    models = offered_models(args.checkpoint, args.device, args.tlc)
    # Pillow refuses files over twice its own pixel limit as decompression bombs: never below this server's limit
    PILImage.MAX_IMAGE_PIXELS = max(PILImage.MAX_IMAGE_PIXELS or 0, int(args.max_megapixels * 1e6))
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        raise UserError(f"--host {args.host} --port {args.port}: cannot listen there ({exc.strerror or exc})") from None
    jobs = JobQueue(models, max_megapixels=args.max_megapixels, max_jobs=args.queue,
                    keep_seconds=args.keep_minutes * 60)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"nafft serve: http://{shown}:{port}/ ({', '.join(m.id for m in models)}; one image at a time on "
          f"{models[0].opened.device}; Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        print(f"nafft serve: listening on {host}: anyone who can reach this machine can use it and see the results",
              file=sys.stderr)
    try:
        make_server(build_app(jobs)).run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl-C, the way to stop a server: uvicorn has shut down cleanly before passing it on
        print("nafft serve: stopped", file=sys.stderr)
    finally:
        jobs.close()
        sock.close()
    return 0
