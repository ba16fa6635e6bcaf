"""A student's text in the atlas store: kept only when shared, once per identical run, and
never given out for a run that is not shared (version 1 files are upgraded that way)."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from lib.atlas.store import STORE_VERSION, Store, TokenRow, recording_mode, run_key

# The layout of a version 1 file, as that version created it (copied from its release):
# one owner per run, and every app run recorded by default.
V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, doc_key TEXT UNIQUE,
    owner TEXT, model TEXT NOT NULL, prompt TEXT NOT NULL, settings TEXT NOT NULL,
    created REAL NOT NULL, n_tokens INTEGER NOT NULL
);
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER, position INTEGER NOT NULL, token_id INTEGER NOT NULL, label TEXT NOT NULL,
    context TEXT NOT NULL, fingerprint BLOB NOT NULL, zone TEXT NOT NULL
);
CREATE INDEX tokens_run ON tokens(run_id);
CREATE INDEX runs_created ON runs(created);
CREATE INDEX runs_owner ON runs(owner);
INSERT INTO meta VALUES ('schema_version', '1');
"""


def v1_file(path, runs):
    """A version 1 store with `runs`: (source, owner, prompt, token ids, context)."""
    with sqlite3.connect(path) as con:
        con.executescript(V1_SCHEMA)
        for source, owner, prompt, ids, context in runs:
            rid = con.execute(
                "INSERT INTO runs (source, doc_key, owner, model, prompt, settings, created,"
                " n_tokens) VALUES (?, ?, ?, 'm', ?, '{}', 0, ?)",
                (source, None if source == "app" else f"doc-{prompt}", owner, prompt, len(ids)),
            ).lastrowid
            for k, i in enumerate(ids):
                fp = np.full(20, 0.01 * (k + 1), "<f4").tobytes()
                con.execute(
                    "INSERT INTO tokens (run_id, step, position, token_id, label, context,"
                    " fingerprint, zone) VALUES (?, ?, ?, ?, ?, ?, ?, 'diffuse')",
                    (rid, k, k + 3, i, f"w{i}", f"{context}⟦w{i}⟧", fp),
                )


def test_a_version_1_file_keeps_its_data_but_not_the_students_text(tmp_path):
    path = tmp_path / "old.sqlite"
    v1_file(
        path,
        [
            ("corpus", None, "A corpus text", [1, 2, 3], "corpus words"),
            ("app", "alice", "Alice's diary entry", [7, 8], "Alice's diary"),
            ("app", "bob", "Alice's diary entry", [7, 8], "Alice's diary"),  # the same run
            ("app", "bob", "Bob's own prompt", [9], "Bob's own"),
        ],
    )
    store = Store(path)
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT value FROM meta").fetchone()[0] == str(STORE_VERSION)
    on_disk = path.read_bytes() + (path.parent / "old.sqlite-wal").read_bytes()
    assert b"Alice" not in on_disk and b"Bob" not in on_disk  # taken out, not just hidden
    assert b"corpus words" in on_disk
    assert store.count() == (3, 6)  # the copy is gone, no token of the others
    assert store.count("alice") == (1, 2) and store.count("bob") == (2, 3)
    fp = store.fingerprints()
    text = " ".join(fp.contexts + fp.labels)
    assert "corpus words" in text and "Alice" not in text and "Bob" not in text
    corpus = int(fp.run_ids[0])
    assert store.shown_runs(set(fp.run_ids.tolist())) == {corpus}
    app_runs = sorted(set(fp.run_ids.tolist()) - {corpus})
    assert all(store.run(r)["prompt"] == "" and store.run(r)["settings"] == {} for r in app_runs)
    assert set(fp.token_ids[fp.run_ids != corpus].tolist()) == {-1}  # ids are text too
    assert all(store.token_ids(r) == {} for r in app_runs)
    assert store.run(corpus)["prompt"] == "A corpus text"
    np.testing.assert_allclose(fp.vectors[fp.run_ids == app_runs[0]][:, 0], [0.01, 0.02])
    # A student who shares the same run now gives it its text back.
    rows = [
        TokenRow(
            k, k + 3, i, f"w{i}", f"Alice's diary⟦w{i}⟧", np.full(20, 0.01 * (k + 1)), "diffuse"
        )
        for k, i in enumerate([7, 8])
    ]
    key = run_key("m", "Alice's diary entry", {}, [7, 8])
    assert store.add_run(
        source="app", model="m", prompt="Alice's diary entry", settings={}, tokens=rows,
        owner="carol", doc_key=key,
    ) is None  # fmt: skip
    assert store.count() == (3, 6) and store.run(app_runs[0])["owners"] == 3
    assert store.run(app_runs[0])["prompt"] == "Alice's diary entry"
    assert store.token_ids(app_runs[0]) == {3: 7, 4: 8}
    assert "Alice's diary⟦w7⟧" in store.fingerprints().contexts
    # Deleting works on the upgraded file: the shared copy goes with its last owner.
    assert store.delete_owner("alice") == 1 and store.delete_owner("carol") == 1
    assert store.count() == (3, 6)
    assert store.delete_owner("bob") == 2 and store.count() == (1, 3)
    Store(path)  # opening it again changes nothing
    assert store.count() == (1, 3)


def test_a_shared_run_is_kept_once_and_goes_with_its_last_owner(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    rows = [TokenRow(0, 4, 11, "·hi", "…⟦·hi⟧", np.zeros(20), "diffuse")]
    settings = {"max_new_tokens": 1}
    key = run_key("m", "Hello", settings, [11])
    assert key != run_key("m", "Hello", settings, [12])  # other tokens: another run
    assert key != run_key("m", "Hello", {"max_new_tokens": 2}, [11])
    first = store.add_run(
        source="app", model="m", prompt="Hello", settings=settings, tokens=rows,
        owner="a", doc_key=key,
    )  # fmt: skip
    again = store.add_run(
        source="app", model="m", prompt="Hello", settings=settings, tokens=rows,
        owner="b", doc_key=key,
    )  # fmt: skip
    assert first is not None and again is None
    assert store.count() == (1, 1) and store.run(first)["owners"] == 2
    assert store.shown_runs([first, 999]) == {first}
    assert store.delete_owner("a") == 1 and store.count() == (1, 1)
    assert store.delete_owner("b") == 1 and store.count() == (0, 0)
    assert store.shown_runs([first]) == set()
    # A delete takes back only the owner's runs: a run with no owner at all stays.
    store.add_run(source="app", model="m", prompt="x", settings={}, tokens=rows)
    assert store.delete_owner("nobody") == 0 and store.count() == (1, 1)


@pytest.mark.parametrize(
    ("value", "mode"),
    [(None, "ask"), ("", "ask"), ("ask", "ask"), ("0", "off"), ("off", "off"),
     ("class", "class"), ("1", "class"), ("maybe", "ask")],
)  # fmt: skip
def test_recording_is_asked_unless_the_server_says_otherwise(monkeypatch, value, mode):
    if value is None:
        monkeypatch.delenv("TAV_ATLAS_RECORD", raising=False)
    else:
        monkeypatch.setenv("TAV_ATLAS_RECORD", value)
    assert recording_mode() == mode
