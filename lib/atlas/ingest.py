"""Ingestion: read texts with the model and record every token's fingerprint.

One forward pass over a window of a text gives every query row (prompt tokens included);
the capture keeps only each row's mean over layers and heads and each layer's head entropy
(`AttentionRecorder("summary")`), from which `lib.analysis.fingerprint.from_summary` builds
the same 20 numbers the app shows for a generated token. Each window is one stored run
with a key (model, text, window), written in one transaction: an interrupted ingestion
resumes where it stopped, with no duplicate and no missing rows.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lib.analysis.fingerprint import from_summary, zone
from lib.atlas.store import Store, TokenRow
from lib.labels import display_texts, in_context
from lib.model.capture import AttentionRecorder
from lib.model.loading import LoadedModel
from lib.model.result import GenerationResult

WINDOW = 512  # tokens a forward pass reads; long texts are cut into windows of this size
MAX_FILE_BYTES = 5_000_000


@dataclass(frozen=True)
class Document:
    name: str
    text: str
    source: str  # "corpus" or "file"


@dataclass(frozen=True)
class Progress:
    """Where an ingestion is: windows done of total, and what happened to the last one."""

    done: int
    total: int
    document: str
    stored: int  # windows written in this ingestion
    skipped: int  # windows already in the store (resumed)
    tokens: int  # tokens written in this ingestion


def corpus_documents() -> list[Document]:
    """The built-in corpus (lib/atlas/corpus/*.txt), in name order."""
    folder = importlib.resources.files("lib.atlas") / "corpus"
    return [
        Document(p.name.removesuffix(".txt"), p.read_text(encoding="utf-8"), "corpus")
        for p in sorted(folder.iterdir(), key=lambda p: p.name)
        if p.name.endswith(".txt")
    ]


def file_documents(paths: Iterable[Path]) -> list[Document]:
    """A user's text files (UTF-8); a folder contributes its *.txt and *.md files."""
    docs = []
    for path in paths:
        files = sorted([*path.rglob("*.txt"), *path.rglob("*.md")]) if path.is_dir() else [path]
        for f in files:
            if f.stat().st_size > MAX_FILE_BYTES:
                raise ValueError(f"{f} is larger than {MAX_FILE_BYTES // 1_000_000} MB.")
            docs.append(Document(str(f), f.read_text(encoding="utf-8", errors="replace"), "file"))
    return docs


@torch.inference_mode()
def summary(lm: LoadedModel, token_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """One pass over a text: every query row's mean over layers and heads (T, T) and each
    layer's mean normalised head entropy per query (L, T), float32."""
    recorder = AttentionRecorder("summary")
    lm.forward(token_ids, last_only=True, recorder=recorder)
    return recorder.mean_matrix(), recorder.layer_entropies()


def text_fingerprints(lm: LoadedModel, token_ids: Sequence[int]) -> np.ndarray:
    """(T, 20) float32: the fingerprint of every position's query row, from one pass."""
    mean, entropies = summary(lm, token_ids)
    return np.stack([from_summary(mean[q, : q + 1], entropies[:, q]) for q in range(len(mean))])


def windows(token_ids: Sequence[int], size: int = WINDOW) -> list[list[int]]:
    ids = [int(t) for t in token_ids]
    return [ids[i : i + size] for i in range(0, len(ids), size)] or []


def doc_key(model_spec: str, text: str, index: int, size: int) -> str:
    h = hashlib.sha256(f"{model_spec}\0{size}\0{index}\0".encode() + text.encode())
    return h.hexdigest()


def window_rows(lm: LoadedModel, ids: Sequence[int]) -> list[TokenRow]:
    """The window's tokens with their fingerprints, the app's way round: token q + 1 gets
    the row of query q, the attention that predicted it (a generated token's fingerprint
    is the row that produced it). Row 0 (one key, nothing to choose) is left out."""
    fps = text_fingerprints(lm, ids)
    text = display_texts(lm.tokenizer)
    texts = [text(t) for t in ids]
    return [
        TokenRow(
            None,
            q + 1,
            int(ids[q + 1]),
            texts[q + 1],
            in_context(texts, q + 1),
            fps[q],
            zone(fps[q]),
        )
        for q in range(1, len(ids) - 1)
    ]


def ingest(
    store: Store,
    lm: LoadedModel,
    documents: Sequence[Document],
    *,
    window: int = WINDOW,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Progress:
    """Record every window of every document not stored yet; returns the final progress."""
    plan = []
    for doc in documents:
        ids = lm.tokenizer(doc.text, add_special_tokens=False)["input_ids"]
        for i, w in enumerate(windows(ids, window)):
            if len(w) > 2:
                plan.append((doc, i, w))
    stored = skipped = tokens = 0
    state = Progress(0, len(plan), "", 0, 0, 0)
    for n, (doc, i, ids) in enumerate(plan, start=1):
        if should_stop():
            break
        key = doc_key(lm.spec, doc.text, i, window)
        if store.has_doc(key):
            skipped += 1
        else:
            rows = window_rows(lm, ids)
            settings = {"document": doc.name, "window": i, "window_size": window}
            prompt = lm.tokenizer.decode(ids)
            if (
                store.add_run(
                    source=doc.source,
                    model=lm.spec,
                    prompt=prompt,
                    settings=settings,
                    tokens=rows,
                    doc_key=key,
                )
                is None
            ):
                skipped += 1  # another ingestion stored it meanwhile
            else:
                stored += 1
                tokens += len(rows)
        state = Progress(n, len(plan), doc.name, stored, skipped, tokens)
        if progress:
            progress(state)
    return state


def run_rows(result: GenerationResult, fingerprints: np.ndarray) -> list[TokenRow]:
    """A generated run's tokens for the store: one row per generated token, with the
    fingerprint the app computed from its captured row."""
    zones = [zone(v) for v in fingerprints]
    rows = []
    for s in range(result.n_steps):
        pos = result.prompt_len + s
        rows.append(
            TokenRow(
                s,
                pos,
                int(result.token_ids[pos]),
                result.texts[pos],
                in_context(result.texts, pos),
                fingerprints[s],
                zones[s],
            )
        )
    return rows
