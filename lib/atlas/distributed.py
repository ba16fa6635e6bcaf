"""Ingestion on Ray Data, for corpora that outgrow one machine (optional extra).

`uv sync --extra distributed` installs Ray. Ingestion is a map over documents: each Ray
worker loads the model once (a callable class) and turns documents into windows of
fingerprinted tokens, exactly as `lib.atlas.ingest` does in one process; the driver writes
them to the store, which stays one local SQLite file. Windows already stored are skipped
by the workers (their keys travel with the job), so a resumed job redoes nothing.

    uv run python -m lib.atlas ingest --ray [--ray-address auto] my_texts/
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict

import numpy as np

from lib.atlas.ingest import WINDOW, Document, Progress, doc_key, window_rows, windows
from lib.atlas.store import Store, TokenRow


class _Fingerprinter:
    """A Ray worker: one model, many documents."""

    def __init__(self, model_spec: str, window: int, done: frozenset[str]) -> None:
        from lib.model.loading import load_model

        self.lm = load_model(model_spec)
        self.window, self.done = window, done

    def __call__(self, doc: dict) -> list[dict]:
        lm = self.lm
        ids = lm.tokenizer(doc["text"], add_special_tokens=False)["input_ids"]
        out = []
        for i, w in enumerate(windows(ids, self.window)):
            key = doc_key(lm.spec, doc["text"], i, self.window)
            if len(w) <= 2 or key in self.done:
                continue
            rows = [asdict(r) | {"fingerprint": r.fingerprint.tolist()} for r in window_rows(lm, w)]
            out.append(
                {
                    "name": doc["name"],
                    "source": doc["source"],
                    "window": i,
                    "key": key,
                    "prompt": lm.tokenizer.decode(w),
                    "rows": rows,
                }
            )
        return out


def ingest_on_ray(
    store: Store,
    model_spec: str,
    documents: Sequence[Document],
    *,
    window: int = WINDOW,
    workers: int = 2,
    address: str | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> Progress:
    """Fingerprint `documents` on a Ray cluster (a local one if `address` is None)."""
    from lib.cluster import start_ray

    ray = start_ray(address)
    done = store.doc_keys()
    items = [{"name": d.name, "text": d.text, "source": d.source} for d in documents]
    results = ray.data.from_items(items).flat_map(
        _Fingerprinter,
        fn_constructor_kwargs={"model_spec": model_spec, "window": window, "done": done},
        concurrency=workers,
    )
    stored = skipped = tokens = 0
    state = Progress(0, 0, "", 0, 0, 0)
    for n, win in enumerate(results.iter_rows(), start=1):
        rows = [
            TokenRow(**(r | {"fingerprint": np.asarray(r["fingerprint"], dtype=np.float32)}))
            for r in win["rows"]
        ]
        settings = {"document": win["name"], "window": win["window"], "window_size": window}
        if (
            store.add_run(
                source=win["source"],
                model=model_spec,
                prompt=win["prompt"],
                settings=settings,
                tokens=rows,
                doc_key=win["key"],
            )
            is None
        ):
            skipped += 1
        else:
            stored, tokens = stored + 1, tokens + len(rows)
        state = Progress(n, n, win["name"], stored, skipped, tokens)
        if progress:
            progress(state)
    return state
