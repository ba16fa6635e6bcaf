"""The map in one step: the model reads the built-in corpus, then discovery finds the
families in everything stored. The Atlas page's "Build the map here" and
`python -m lib.atlas build` both run this."""

from __future__ import annotations

from collections.abc import Callable

from lib.atlas import discovery
from lib.atlas.discovery import DiscoveryConfig
from lib.atlas.ingest import corpus_documents, ingest
from lib.atlas.store import Store
from lib.model.loading import LoadedModel

Report = Callable[[float, str], None]  # (fraction of the stage done, what is happening)


def build_map(
    store: Store,
    lm: LoadedModel,
    output: str,
    report: Report | None = None,
    min_cluster_size: int = DiscoveryConfig.min_cluster_size,
) -> dict:
    """Ingest the built-in corpus (resumable: windows already stored are skipped), then
    discover families in every stored fingerprint; returns the discovery's manifest.

    Raises `DiscoveryError` when the store holds too few fingerprints to map.
    """
    say = report or (lambda _fraction, _text: None)
    ingest(
        store,
        lm,
        corpus_documents(),
        progress=lambda p: say(
            p.done / p.total, f"Reading the corpus: {p.done} of {p.total} windows ({p.document})"
        ),
    )
    config = DiscoveryConfig(
        db=store.spec, output=output, hours=0, min_cluster_size=min_cluster_size
    )
    return discovery.run_discovery(
        config, lambda s: say(s.fraction, f"Discovering families: {s.stage}")
    )
