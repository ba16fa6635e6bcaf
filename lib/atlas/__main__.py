"""`uv run python -m lib.atlas ingest | discover | build | ship | calibrate | serve`: the atlas
from the command line.

ingest    read the built-in corpus (and/or your text files) with the model and record
          every token's fingerprint; run it again to resume after an interruption
discover  the discovery job: UMAP + HDBSCAN -> Parquet, manifest, `latest`
build     both for the built-in corpus, as the Atlas page's "Build the map here" does
ship      remake the map shipped with the app (lib/atlas/map): the corpus alone, read by
          the bundled model in a store of its own
calibrate set the zone thresholds on the ingested corpus
serve     the FastAPI classify service (uvicorn)
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m lib.atlas",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    db_help = (
        "SQLite file, sqlite:/// URL or postgresql:// URL (default: $TAV_ATLAS_DB, else the "
        "cache folder)"
    )

    i = sub.add_parser("ingest", help="record fingerprints of a corpus")
    i.add_argument("--db", help=db_help)
    i.add_argument("files", nargs="*", type=Path, help="text files or folders (*.txt, *.md)")
    i.add_argument("--no-corpus", action="store_true", help="only the given files")
    i.add_argument("--model", default=None, help="model id or folder (default: the bundled)")
    i.add_argument("--window", type=int, default=512, help="tokens per forward pass")
    i.add_argument("--threads", type=int, default=None, help="torch threads")
    i.add_argument(
        "--ray",
        action="store_true",
        help="run on Ray Data (uv sync --extra distributed): a local cluster, or --ray-address",
    )
    i.add_argument("--ray-address", default=None, help="an existing Ray cluster ('auto')")
    i.add_argument("--workers", type=int, default=2, help="Ray workers (one model each)")

    d = sub.add_parser("discover", help="cluster and map the stored fingerprints")
    d.add_argument("--db", help=db_help)
    d.add_argument(
        "--output",
        default=None,
        help="folder for the runs (default: $TAV_ATLAS_DIR, else the cache folder)",
    )
    d.add_argument("--hours", type=float, default=24.0, help="runs of the last N hours; 0 = all")
    d.add_argument("--min-cluster-size", type=int, default=20)
    d.add_argument("--umap-sample-size", type=int, default=50_000)
    d.add_argument("--batch-size", type=int, default=20_000, help="points placed per chunk")
    d.add_argument(
        "--long-running",
        action="store_true",
        help="checkpoint after every chunk and stop cleanly on Ctrl+C (always on)",
    )
    d.add_argument("--max-memory-gb", type=float, default=None, help="caps the UMAP sample")
    d.add_argument("--resume", metavar="RUN_ID", help="continue a stopped run")
    d.add_argument(
        "--websocket-port",
        type=int,
        metavar="N",
        help="serve live progress events on ws://127.0.0.1:N (0: any free port); the port "
        "is written to OUTPUT/progress.json while the job runs, where the Atlas page finds it",
    )
    d.add_argument("--seed", type=int, default=0)

    b = sub.add_parser("build", help="ingest the built-in corpus, then discover (the page's way)")
    b.add_argument("--db", help=db_help)
    b.add_argument("--output", default=None, help="as discover's --output")
    b.add_argument("--model", default=None, help="model id or folder (default: the bundled)")

    sh = sub.add_parser("ship", help="remake the map shipped with the app (lib/atlas/map)")
    sh.add_argument("--output", type=Path, default=None, help="another folder (default: the app's)")

    c = sub.add_parser("calibrate", help="set the zone thresholds on the ingested corpus")
    c.add_argument("--db", help=db_help)
    c.add_argument(
        "--write",
        type=Path,
        help="write the rules here (the app reads lib/analysis/zone_rules.json)",
    )

    s = sub.add_parser("serve", help="the classify service")
    s.add_argument("--db", help=db_help)
    s.add_argument("--discovery-dir", default=None, help="discover's --output (same default)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=9009)
    s.add_argument(
        "--online",
        action="store_true",
        help="classify every fingerprint posted as it arrives (the generation service's "
        "--sidecar sends them); the Atlas page shows them arriving",
    )
    return p.parse_args(argv)


def _stoppable() -> list[int]:
    """Ctrl+C once: stop at the next safe point (a window, a chunk); twice: now."""
    stop: list[int] = []

    def handler(*_) -> None:
        if stop:
            raise KeyboardInterrupt("stopped")
        stop.append(1)
        print("Stopping at the next safe point (Ctrl+C again to quit now) ...", flush=True)

    signal.signal(signal.SIGINT, handler)
    return stop


def ingest(args: argparse.Namespace) -> int:
    try:
        return _ingest(args)
    except (OSError, ValueError, UnicodeError) as err:  # files, the store, the settings
        print(f"Cannot ingest: {err}", file=sys.stderr)
        return 2


def _ingest(args: argparse.Namespace) -> int:
    import torch

    from lib.atlas.ingest import corpus_documents, file_documents
    from lib.atlas.ingest import ingest as run
    from lib.atlas.store import Store
    from lib.config import BUNDLED_MODEL
    from lib.model.loading import load_model

    if args.window < 3:
        raise ValueError("--window must be at least 3 tokens")
    if args.threads:
        torch.set_num_threads(args.threads)
    docs = ([] if args.no_corpus else corpus_documents()) + file_documents(args.files)
    if not docs:
        print("Nothing to ingest: give files or leave out --no-corpus.", file=sys.stderr)
        return 2
    store = Store(args.db)
    if args.ray:
        from lib.atlas.distributed import ingest_on_ray

        final = ingest_on_ray(
            store,
            args.model or BUNDLED_MODEL,
            docs,
            window=args.window,
            workers=args.workers,
            address=args.ray_address,
            progress=lambda p: print(f"[{p.done}] {p.document}: {p.tokens} tokens", flush=True),
        )
        print(f"Done on Ray: {final.stored} windows stored, {final.skipped} already there.")
        return 0
    lm = load_model(args.model or BUNDLED_MODEL)
    stop = _stoppable()

    def show(p) -> None:
        print(
            f"[{p.done}/{p.total}] {p.document}: {p.stored} windows stored, "
            f"{p.skipped} already there, {p.tokens} tokens",
            flush=True,
        )

    final = run(store, lm, docs, window=args.window, progress=show, should_stop=lambda: bool(stop))
    runs, tokens = store.count()
    print(
        f"{'Stopped' if stop else 'Done'}: {final.tokens} tokens recorded now; the store "
        f"{store.name} holds {runs} runs, {tokens} tokens."
    )
    return 130 if stop else 0


def discover(args: argparse.Namespace) -> int:
    from lib.atlas.discovery import DiscoveryConfig, DiscoveryError, default_output, run_discovery

    args.output = args.output or str(default_output())
    cfg = DiscoveryConfig(
        db=args.db,
        output=args.output,
        hours=args.hours,
        min_cluster_size=args.min_cluster_size,
        umap_sample_size=args.umap_sample_size,
        batch_size=args.batch_size,
        max_memory_gb=args.max_memory_gb,
        seed=args.seed,
    )
    if args.resume:
        cfg.run_id = args.resume
        if not (Path(args.output) / args.resume / "checkpoint" / "state.json").exists():
            print(f"No checkpoint for run {args.resume} in {args.output}.", file=sys.stderr)
            return 2
        print(f"Resuming {args.resume} with the settings it started with.", flush=True)
    stop = _stoppable()
    live = None
    if args.websocket_port is not None:
        from lib.atlas.progress import ProgressServer

        try:
            live = ProgressServer(args.websocket_port, args.output, cfg.run_id)
        except OSError as err:  # the port is taken, or the folder cannot be written
            print(f"Cannot serve progress on port {args.websocket_port}: {err}", file=sys.stderr)
            return 2
        print(f"Progress on ws://127.0.0.1:{live.port}", flush=True)

    def report(s) -> None:
        print(f"[{s.fraction:4.0%}] {s.stage}", flush=True)
        if live is not None:
            live.send(s.stage, s.fraction)

    ended = ("failed", "the job stopped unexpectedly; see its output")
    try:
        m = run_discovery(cfg, report, should_stop=lambda: bool(stop))
        ended = (f"finished: {m['n_clusters']} families", None)
    except (DiscoveryError, ValueError, OSError) as err:  # StoreError is an OSError too
        print(err, file=sys.stderr)
        ended = ("failed", str(err))
        return 2
    except KeyboardInterrupt as err:
        print(err, file=sys.stderr)
        ended = ("stopped", str(err))
        return 130
    finally:  # whatever ended the job, its listeners hear it and its file says so
        if live is not None:
            live.close(ended[0], error=ended[1])
    print(
        f"Run {m['run_id']}: {m['n_points']} fingerprints, {m['n_clusters']} clusters, "
        f"{m['noise']} noise, in {m['timings_s']['total_s']:.1f} s -> {args.output}"
    )
    return 0


def build(args: argparse.Namespace) -> int:
    from lib.atlas.build import build_map
    from lib.atlas.discovery import DiscoveryError, default_output
    from lib.atlas.store import Store
    from lib.config import BUNDLED_MODEL
    from lib.model.loading import ModelLoadError, load_model

    output = args.output or str(default_output())
    try:
        m = build_map(
            Store(args.db),
            load_model(args.model or BUNDLED_MODEL),
            output,
            lambda fraction, text: print(f"[{fraction:4.0%}] {text}", flush=True),
        )
    except (DiscoveryError, ModelLoadError, ValueError, OSError) as err:
        print(err, file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # what was ingested is kept; `build` again resumes
        print("Stopped; run it again to go on.", file=sys.stderr)
        return 130
    print(
        f"Run {m['run_id']}: {m['n_points']} fingerprints, {m['n_clusters']} clusters -> {output}"
    )
    return 0


def ship(args: argparse.Namespace) -> int:
    from lib.atlas.discovery import DiscoveryError
    from lib.atlas.shipped import SHIPPED
    from lib.atlas.shipped import ship as make
    from lib.model.loading import ModelLoadError, load_model

    folder = args.output or SHIPPED
    try:
        m = make(
            load_model(),
            folder,
            lambda fraction, text: print(f"[{fraction:4.0%}] {text}", flush=True),
        )
    except (DiscoveryError, ModelLoadError, ValueError, OSError) as err:
        print(err, file=sys.stderr)
        return 2
    print(
        f"Run {m['run_id']}: {m['n_points']} fingerprints, {m['n_clusters']} clusters, "
        f"{m['noise']} noise -> {folder}"
    )
    return 0


def calibrate(args: argparse.Namespace) -> int:
    from collections import Counter

    from lib.analysis.fingerprint import zone
    from lib.atlas.calibrate import calibrate as fit
    from lib.atlas.store import Store

    store = Store(args.db)
    fp = store.fingerprints(source="corpus")
    try:
        rules = fit(
            fp.vectors,
            fp.positions,
            f"the built-in corpus ({len(fp):,} tokens, {', '.join(sorted(set(fp.models)))})",
        )
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    print(rules.to_json())
    shares = Counter(zone(v, rules) for v in fp.vectors)
    print("zones on the corpus:", {z: f"{n / len(fp):.0%}" for z, n in shares.most_common()})
    if args.write:
        args.write.write_text(rules.to_json())
        print(f"written to {args.write}")
    return 0


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from lib.atlas.discovery import default_output
    from lib.atlas.service import create_app

    app = create_app(args.db, args.discovery_dir or default_output(), online=args.online)
    uvicorn.run(app, host=args.host, port=args.port)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    commands = {
        "ingest": ingest,
        "discover": discover,
        "build": build,
        "ship": ship,
        "calibrate": calibrate,
        "serve": serve,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
