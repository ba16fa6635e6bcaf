"""The atlas on the real bundled model: exact fingerprints from one pass, resumable ingestion."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lib.atlas.ingest import Document, corpus_documents, ingest, text_fingerprints, windows
from lib.atlas.store import Store

ROOT = Path(__file__).resolve().parent.parent


def test_one_pass_fingerprints_equal_the_generated_runs(smollm2):
    """The whole-text pass (every query row at once, summaries only) gives the same 20
    numbers as the app's fingerprints of a generated run (one captured row per step, with
    the KV cache): two capture paths, one answer."""
    from lib.analysis.fingerprint import run_fingerprints
    from lib.model.generation import generate

    result = generate(smollm2, "The recipe needs flour, eggs and milk. First you", 12)
    fps = text_fingerprints(smollm2, result.token_ids.tolist())
    app = run_fingerprints(result).vectors
    rows = fps[result.prompt_len - 1 : result.prompt_len - 1 + result.n_steps]
    np.testing.assert_allclose(rows, app, atol=1e-5)


def test_a_points_attention_is_its_row_in_eager_attention(smollm2, smollm2_eager, tmp_path):
    """A stored token's attention, read again (`lib.atlas.point`), equals the row of the
    query before it in transformers' eager attention, averaged over layers and heads, for a
    read text and for a shared generated run; a private run gives nothing to read."""
    import torch

    from lib.analysis.fingerprint import run_fingerprints
    from lib.atlas.ingest import run_rows
    from lib.atlas.point import PointError, point_attention
    from lib.atlas.store import run_key
    from lib.model.generation import generate

    store = Store(tmp_path / "p.sqlite")
    text = "The cat sat on the mat. The dog sat on the log. Then the cat ran away."
    ingest(store, smollm2, [Document("d", text, "file")])
    r = generate(smollm2, "Alice wrote a letter to", 4)
    rows = run_rows(r, run_fingerprints(r).vectors)
    settings = r.settings.to_dict()
    key = run_key(smollm2.spec, r.prompt, settings, [x.token_id for x in rows])
    app_id = store.add_run(
        source="app", model=smollm2.spec, prompt=r.prompt, settings=settings, tokens=rows,
        owner="a", doc_key=key,
    )  # fmt: skip
    fp = store.fingerprints()
    ids = smollm2.tokenizer(text, add_special_tokens=False)["input_ids"]
    checked = 0
    for k in (0, 7, int((fp.run_ids != app_id).sum()) - 1, len(fp) - 1):
        run_id, position = int(fp.run_ids[k]), int(fp.positions[k])
        context = ids if run_id != app_id else r.token_ids.tolist()
        with torch.no_grad():
            att = smollm2_eager(torch.tensor([context[:position]]), output_attentions=True)
        expected = torch.stack(att.attentions)[:, 0, :, -1, :].mean(dim=(0, 1)).numpy()
        pa = point_attention(smollm2, store.run(run_id), store.token_ids(run_id), position,
                             fp.vectors[k])  # fmt: skip
        np.testing.assert_allclose(pa.weights, expected, atol=1e-5)
        assert pa.agrees and pa.target == fp.labels[k] and pa.position == position
        checked += 1
    assert checked == 4
    with __import__("sqlite3").connect(store.path) as con:
        con.execute("UPDATE runs SET shared = 0 WHERE id = ?", (app_id,))
    private = store.run(app_id)
    assert store.token_ids(app_id) == {} and private["prompt"] == "" and private["settings"] == {}
    with pytest.raises(PointError):
        point_attention(smollm2, store.run(app_id), {}, int(rows[0].position), rows[0].fingerprint)


def test_corpus_is_varied_and_windows_cover_every_token(smollm2):
    docs = corpus_documents()
    names = {d.name for d in docs}
    assert len(docs) >= 10
    for kind in ("prose", "dialogue", "code", "json", "table", "list", "numbers"):
        assert any(kind in n for n in names), kind
    ids = list(range(1300))
    assert [len(w) for w in windows(ids, 512)] == [512, 512, 276]
    assert sum(windows(ids, 512), []) == ids


def test_ingest_records_every_token_once(smollm2, tmp_path):
    store = Store(tmp_path / "fp.sqlite")
    docs = [
        Document("a", "One two three four five six seven eight nine ten.", "file"),
        Document("b", '{"x": [1, 2, 3], "y": "z"}', "file"),
    ]
    seen = []
    first = ingest(store, smollm2, docs, window=8, progress=seen.append)
    n_ids = [len(smollm2.tokenizer(d.text, add_special_tokens=False)["input_ids"]) for d in docs]
    # Each window of w tokens records w - 2 (the first row has one key; the last predicts
    # past the window).
    expected = sum(len(w) - 2 for n in n_ids for w in windows(list(range(n)), 8) if len(w) > 2)
    assert store.count()[1] == expected == first.tokens
    assert [p.done for p in seen] == list(range(1, first.total + 1))
    again = ingest(store, smollm2, docs, window=8)
    assert (again.stored, again.skipped, again.tokens) == (0, first.total, 0)
    assert store.count()[1] == expected
    fp = store.fingerprints()
    assert all(c.endswith("⟧") for c in fp.contexts)
    assert (fp.steps == -1).all()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_killed_ingestion_resumes_without_duplicates_or_gaps(
    smollm2, tmp_path, processes, request, kind
):
    """`python -m lib.atlas ingest` killed (SIGKILL) in the middle, then run again, stores
    exactly what one uninterrupted ingestion stores, in a SQLite file or in PostgreSQL."""
    text = "\n".join(f"Line {i}: the quick brown fox number {i} jumps." for i in range(60))
    (tmp_path / "notes.txt").write_text(text)
    db = tmp_path / "killed.sqlite" if kind == "sqlite" else request.getfixturevalue("postgres")()
    cmd = [
        "-m",
        "lib.atlas",
        "ingest",
        "--db",
        str(db),
        "--no-corpus",
        "--window",
        "32",
        "--threads",
        "1",
        str(tmp_path / "notes.txt"),
    ]
    env = {**os.environ, "PYTHONPATH": "."}
    proc = processes.start(*cmd, env=env, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:  # wait for the event: a few windows stored
        if line.startswith("[") and int(line[1:].split("/")[0]) >= 3:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    partial = Store(db).count()
    total_windows = len(windows(smollm2.tokenizer(text, add_special_tokens=False)["input_ids"], 32))
    assert 0 < partial[0] < total_windows
    done = processes.run(*cmd, env=env)
    assert done.returncode == 0, done.stderr
    last = [ln for ln in done.stdout.splitlines() if ln.startswith("[")][-1]
    skipped = int(last.split(" windows stored, ")[1].split(" already there")[0])
    assert skipped >= partial[0]  # what the killed run stored was not done again

    reference = Store(tmp_path / "whole.sqlite")
    ingest(reference, smollm2, [Document(str(tmp_path / "notes.txt"), text, "file")], window=32)
    assert Store(db).count() == reference.count()
    got, want = stored_rows(Store(db)), stored_rows(reference)
    assert [k for k, _ in got] == [k for k, _ in want]  # same tokens, none twice
    np.testing.assert_allclose([v for _, v in got], [v for _, v in want], atol=1e-5)


def stored_rows(store: Store) -> list:
    """Every stored token as ((context, position), fingerprint), with multiplicity."""
    f = store.fingerprints()
    rows = zip(f.contexts, f.positions.tolist(), f.vectors, strict=True)
    return sorted((((c, p), v) for c, p, v in rows), key=lambda r: r[0])


def test_shipped_zone_rules_are_the_corpus_calibration(atlas_built):
    """lib/analysis/zone_rules.json is what `python -m lib.atlas calibrate` gives on the
    built-in corpus read by the bundled model: regenerate it when either changes."""
    from lib.analysis.fingerprint import default_rules
    from lib.atlas.calibrate import calibrate

    fp = Store().fingerprints(source="corpus")
    rules = calibrate(fp.vectors, fp.positions, "x")
    shipped = default_rules()
    for name in ("syntax_local", "syntax_entropy", "long_mass", "mid_mass", "peak_mass"):
        assert getattr(rules, name) == pytest.approx(getattr(shipped, name), abs=2e-3), name
    assert f"{len(fp):,} tokens" in shipped.source


def test_the_shipped_map_is_what_ship_builds_again(smollm2, run_discovery, tmp_path):
    """`python -m lib.atlas ship`'s work, done again: the same tokens with the same
    fingerprints and zones, the same counts, and the same families up to relabelling (the
    best one-to-one pairing of the two labellings, noise as its own label, agrees on 98% of
    the tokens), the same scaler, and paired families of the same sizes."""
    import json

    import pandas as pd
    import pyarrow.parquet as pq
    from scipy.optimize import linear_sum_assignment

    from lib.atlas.classify import Atlas
    from lib.atlas.shipped import SHIPPED, ship

    again = ship(smollm2, tmp_path)
    shipped = json.loads((SHIPPED / "manifest.json").read_text())
    for key in ("n_points", "n_sample", "n_clusters"):
        assert again[key] == shipped[key], key
    assert again["shipped"] == shipped["shipped"]
    old, new = Atlas(SHIPPED), Atlas(tmp_path)
    same = ["run_id", "step", "position", "token_id", "label", "context", "zone"]
    pd.testing.assert_frame_equal(old.points[same], new.points[same])
    np.testing.assert_allclose(old.vectors, new.vectors, atol=1e-4)
    runs = [pq.read_table(f / "runs.parquet").to_pandas() for f in (SHIPPED, tmp_path)]
    pd.testing.assert_frame_equal(*runs)
    # What classifying a new fingerprint reads: the scaler and the families.
    np.testing.assert_allclose(old.scaler.mean_, new.scaler.mean_, atol=1e-5)
    np.testing.assert_allclose(old.scaler.scale_, new.scaler.scale_, atol=1e-5)
    a, b = old.labels + 1, new.labels + 1  # noise (-1) as label 0
    table = np.zeros((a.max() + 1, b.max() + 1), int)
    np.add.at(table, (a, b), 1)
    rows, cols = linear_sum_assignment(-table)
    n = len(a)
    assert table[rows, cols].sum() >= 0.98 * n
    assert abs(again["noise"] - shipped["noise"]) <= 0.02 * n
    # each family's recorded size is its points, in both; paired families are the same size
    for atlas in (old, new):
        sizes = dict(zip(atlas.clusters["cluster"], atlas.clusters["size"], strict=True))
        assert sizes == {c: int((atlas.labels == c).sum()) for c in set(atlas.labels) - {-1}}
    pairs = [(r - 1, c - 1) for r, c in zip(rows, cols, strict=True) if r and c]
    assert all(abs(table[r + 1].sum() - table[:, c + 1].sum()) <= 0.02 * n for r, c in pairs)


def test_ingestion_on_ray_stores_what_one_process_stores(smollm2, tmp_path):
    """The optional Ray Data path (a local Ray cluster, 2 workers) stores the same tokens
    and fingerprints as the in-process ingestion, and skips what is already stored."""
    ray = pytest.importorskip("ray")
    from lib.atlas.distributed import ingest_on_ray

    docs = [
        Document("a", "Ray splits the corpus into documents. Each worker loads the model.", "file"),
        Document("b", "def f(x):\n    return [x, x + 1, x + 2]\n", "file"),
    ]
    reference = Store(tmp_path / "one.sqlite")
    ingest(reference, smollm2, docs, window=16)
    on_ray = Store(tmp_path / "ray.sqlite")
    try:
        first = ingest_on_ray(on_ray, smollm2.spec, docs, window=16, workers=2)
        again = ingest_on_ray(on_ray, smollm2.spec, docs, window=16, workers=2)
    finally:
        ray.shutdown()
    assert first.stored == reference.count()[0] and again.done == 0  # nothing redone
    got, want = stored_rows(on_ray), stored_rows(reference)
    assert [k for k, _ in got] == [k for k, _ in want]
    np.testing.assert_allclose([v for _, v in got], [v for _, v in want], atol=1e-5)
