"""`uv run python -m lib.serve`: the generation service (OpenAI's API, with attention).

uv run python -m lib.serve --port 8000
# then, with OpenAI's client:
#   client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="none")
#   client.chat.completions.create(model="default", messages=[...], stream=True,
#                                  extra_body={"return_attention_tokens": True})
"""

from __future__ import annotations

import argparse
import sys

from lib.serve.protocol import DEFAULT_TOP_K, MAX_TOP_K


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m lib.serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", default=None, help="model id or folder (default: the bundled)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--attention-tokens-top-k",
        type=int,
        default=DEFAULT_TOP_K,
        metavar="N",
        help=f"attention positions sent per token (default {DEFAULT_TOP_K}, at most "
        f"{MAX_TOP_K}; a request may ask for another number)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (per replica)")
    p.add_argument(
        "--replicas",
        type=int,
        default=0,
        metavar="N",
        help="run N replicas on Ray Serve (uv sync --extra distributed), each with its own "
        "model and batch; 0 (the default): one process, no Ray",
    )
    p.add_argument("--ray-address", default=None, help="an existing Ray cluster ('auto')")
    p.add_argument(
        "--sidecar",
        metavar="URL",
        default=None,
        help="the atlas sidecar (python -m lib.atlas serve --online): every finished run's "
        "fingerprints are sent there, numbers only",
    )
    args = p.parse_args(argv)
    if not 1 <= args.attention_tokens_top_k <= MAX_TOP_K:
        p.error(f"--attention-tokens-top-k must be between 1 and {MAX_TOP_K}")
    if args.replicas < 0 or (args.threads is not None and args.threads < 1):
        p.error("--replicas must be 0 or more, --threads 1 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.replicas:
        return _on_ray(args)
    import torch
    import uvicorn

    from lib.config import BUNDLED_MODEL
    from lib.model.loading import ModelLoadError, load_model
    from lib.serve.api import create_app

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        lm = load_model(args.model or BUNDLED_MODEL)
    except ModelLoadError as err:
        print(err, file=sys.stderr)
        return 2
    print(f"Serving {lm.spec} on http://{args.host}:{args.port}/v1", flush=True)
    app = create_app(lm, top_k=args.attention_tokens_top_k, sidecar=args.sidecar)
    uvicorn.run(app, host=args.host, port=args.port)
    return 0


def _on_ray(args: argparse.Namespace) -> int:
    import importlib.util
    import threading

    from lib.serve.replicas import deploy

    missing = "Ray Serve is not installed: uv sync --extra distributed"
    if importlib.util.find_spec("ray") is None:  # (a submodule's spec would import Ray)
        print(missing, file=sys.stderr)
        return 2
    try:
        deploy(
            args.replicas, host=args.host, port=args.port, model=args.model,
            top_k=args.attention_tokens_top_k, sidecar=args.sidecar, threads=args.threads or 1,
            address=args.ray_address,
        )  # fmt: skip
    except ImportError as err:
        print(f"{missing} ({err})", file=sys.stderr)
        return 2
    print(f"Serving on http://{args.host}:{args.port}/v1 with {args.replicas} replicas "
          "(Ctrl+C stops)", flush=True)  # fmt: skip
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        from ray import serve

        serve.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
