"""Item 8: the attention atlas: ingestion, discovery and the map, at scale.

- Ingestion: tokens fingerprinted per second (one forward pass a window, the capture's
  summaries, the SQLite write) over the built-in corpus, against a plain SDPA forward pass
  over the same windows (no capture), in turn.
- Discovery: wall time and peak RSS of `python -m lib.atlas discover` in a fresh process,
  on 10,000 and 100,000 fingerprints (the corpus's real fingerprints resampled with a little
  noise, so the structure is the corpus's; defaults: UMAP fitted on up to 50,000, the rest
  placed in chunks of 20,000).
- The map: building the figure of 100,000 points (server), its JSON, and Chromium drawing
  it with plotly.js (WebGL), against the same figure with 1,000 points.

`python -m bench.atlas discover DB OUT` is the child that runs one discovery.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import child_env, interleaved, median, peak_rss_bytes, run_child


def _ingest(lm, quick: bool, repeats: int, log) -> dict:
    import torch

    from lib.atlas.ingest import WINDOW, corpus_documents, ingest, windows
    from lib.atlas.store import Store

    docs = corpus_documents()[: 2 if quick else None]
    wins = [
        w
        for d in docs
        for w in windows(lm.tokenizer(d.text, add_special_tokens=False)["input_ids"], WINDOW)
    ]
    n_tokens = sum(len(w) for w in wins)
    folder = Path(tempfile.mkdtemp(prefix="tav-bench-atlas-"))
    counter = iter(range(10**6))

    def ours() -> None:
        ingest(Store(folder / f"{next(counter)}.sqlite"), lm, docs)

    @torch.inference_mode()
    def plain() -> None:
        for w in wins:
            lm.model(input_ids=lm.batch(w), use_cache=False, logits_to_keep=1)

    log(f"atlas: ingesting the corpus ({n_tokens:,} tokens), {repeats} repeats")
    times = interleaved({"ours": ours, "plain": plain}, repeats)
    fp = Store(folder / "0.sqlite").fingerprints()
    return {
        "tokens": n_tokens,
        "fingerprints": len(fp),
        "ours_s": median(times["wall"]["ours"]),
        "plain_s": median(times["wall"]["plain"]),
        "db": str(folder / "0.sqlite"),
    }


def _synthetic_store(source_db: str, n: int, path: Path) -> None:
    """n fingerprints resampled from the real ones, each moved by noise of a quarter of each
    number's spread (less would plant a tight clump around every real point)."""
    from lib.atlas.store import Store, TokenRow

    real = Store(source_db).fingerprints()
    rng = np.random.default_rng(0)
    pick = rng.integers(len(real), size=n)
    noise = rng.normal(0, 1, (n, 20)) * real.vectors.std(axis=0) * 0.25
    vectors = np.clip(real.vectors[pick] + noise, 0, None).astype(np.float32)
    store = Store(path)
    for start in range(0, n, 5000):
        rows = [
            TokenRow(
                None,
                int(i),
                0,
                real.labels[pick[i]],
                real.contexts[pick[i]],
                vectors[i],
                real.zones[pick[i]],
            )
            for i in range(start, min(n, start + 5000))
        ]
        store.add_run(source="corpus", model="bench", prompt="", settings={}, tokens=rows)


def child_discover(db: str, out: str) -> dict:
    from lib.atlas.discovery import DiscoveryConfig, run_discovery

    t0 = time.perf_counter()
    manifest = run_discovery(DiscoveryConfig(db=db, output=out, hours=0))
    return {
        "wall_s": time.perf_counter() - t0,
        "peak_rss_bytes": peak_rss_bytes(),
        "n_points": manifest["n_points"],
        "n_clusters": manifest["n_clusters"],
        "timings_s": manifest["timings_s"],
    }


def _discovery(source_db: str, sizes: list[int], threads: int, log) -> dict:
    out = {}
    # The first UMAP in a fresh install compiles its numba code (cached on disk after):
    # timed apart, so the sizes below compare the job, not the compiler.
    for n in (["first"] if len(sizes) > 1 else []) + sizes:  # --quick: no warm-up run
        if n == "first":
            folder = Path(tempfile.mkdtemp(prefix="tav-bench-disc-"))
            _synthetic_store(source_db, 1000, folder / "fp.sqlite")
            log("atlas: a first discovery (1,000 fingerprints), numba compiling if needed")
            out["first_run_1000"] = run_child(
                "bench.atlas",
                ["discover", str(folder / "fp.sqlite"), str(folder / "out")],
                child_env(threads),
                timeout=3600,
            )
            continue
        folder = Path(tempfile.mkdtemp(prefix="tav-bench-disc-"))
        _synthetic_store(source_db, n, folder / "fp.sqlite")
        log(f"atlas: discovery on {n:,} fingerprints in a fresh process")
        out[str(n)] = run_child(
            "bench.atlas",
            ["discover", str(folder / "fp.sqlite"), str(folder / "out")],
            child_env(threads),
            timeout=3600,
        )
    return out


MAP_DRAW_JS = """async (spec) => {
  const gd = document.getElementById('g');
  const t0 = performance.now();
  await Plotly.newPlot(gd, spec.data, spec.layout, {displayModeBar: false});
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return performance.now() - t0;
}"""


def _map(n_big: int, repeats: int, log) -> dict:
    import pandas as pd
    import plotly.io as pio
    from playwright.sync_api import sync_playwright

    from lib.viz.atlas import atlas_map
    from tests.browser import CHROMIUM_ARGS, chromium_path

    rng = np.random.default_rng(0)

    def points(n: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "x": rng.normal(0, 3, n).astype(np.float32),
                "y": rng.normal(0, 3, n).astype(np.float32),
                "cluster": rng.integers(-1, 20, n),
                "zone": rng.choice(["diffuse", "long_range", "syntax_floor"], n),
                "context": [f"…some·context·{i}⟦·tok⟧" for i in range(n)],
            }
        )

    big, small = points(n_big), points(1000)
    names = {c: f"Family {c}" for c in range(20)}
    log(f"atlas: building the map of {n_big:,} points")
    t0 = time.perf_counter()
    fig = atlas_map(big, np.arange(n_big), "cluster", names)
    build_s = time.perf_counter() - t0
    spec_big = json.loads(pio.to_json(fig))
    spec_small = json.loads(pio.to_json(atlas_map(small, np.arange(1000), "cluster", names)))
    size = len(pio.to_json(fig))
    import plotly

    js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    page = Path(tempfile.mkdtemp()) / "map.html"
    page.write_text(
        f"<html><body><div id=g style='width:900px;height:620px'></div>"
        f"<script>{js.read_text()}</script></body></html>"
    )
    draws: dict[str, list[float]] = {"big": [], "small": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        tab = browser.new_page()
        tab.goto(page.as_uri())
        for r in range(repeats + 1):
            for name, spec in (("big", spec_big), ("small", spec_small)):
                ms = tab.evaluate(MAP_DRAW_JS, spec)
                if r:  # the first round warms up
                    draws[name].append(ms)
        browser.close()
    return {
        "points": n_big,
        "build_s": build_s,
        "json_bytes": size,
        "draw_ms": median(draws["big"]),
        "draw_small_ms": median(draws["small"]),
    }


def run(lm, quick: bool, repeats: int, threads: int, log) -> dict:
    ingest = _ingest(lm, quick, max(1, min(repeats, 3)), log)
    sizes = [1000] if quick else [10_000, 100_000]
    return {
        "ingest": ingest,
        "discovery": _discovery(ingest["db"], sizes, threads, log),
        "map": _map(5000 if quick else 100_000, 1 if quick else 3, log),
    }


if __name__ == "__main__":
    if sys.argv[1] == "discover":
        print(json.dumps(child_discover(sys.argv[2], sys.argv[3])))
