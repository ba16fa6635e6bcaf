"""The fingerprint store: one SQLite file that many sessions and jobs write at once.

Schema (version `SCHEMA_VERSION`, created on first use):

    runs    one text the model read or wrote: where it came from (app, corpus, file, api),
            a document key for resumable ingestion, the session that recorded it (so a user
            can delete what they recorded), model, prompt, settings (JSON), time
    tokens  one token of a run: generation step (NULL for a prompt token), position, id,
            display text, a short context, its 20-number fingerprint (float32 bytes) and zone

Every run and its tokens are written in one transaction, so a killed job leaves whole runs
or nothing; WAL mode and a busy timeout let 30 writers share the file without errors. Ids
are never reused (AUTOINCREMENT): a map made before a deletion cannot point at a newer run.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.analysis.fingerprint import DIMENSIONS

SCHEMA_VERSION = 1
N_DIMS = len(DIMENSIONS)
BUSY_TIMEOUT_S = 60.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    doc_key TEXT UNIQUE,
    owner TEXT,
    model TEXT NOT NULL,
    prompt TEXT NOT NULL,
    settings TEXT NOT NULL,
    created REAL NOT NULL,
    n_tokens INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER,
    position INTEGER NOT NULL,
    token_id INTEGER NOT NULL,
    label TEXT NOT NULL,
    context TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    zone TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_run ON tokens(run_id);
CREATE INDEX IF NOT EXISTS runs_created ON runs(created);
CREATE INDEX IF NOT EXISTS runs_owner ON runs(owner);
"""


class StoreError(OSError):
    """The store cannot be opened or is of another schema version."""


def default_path() -> Path:
    """$TAV_ATLAS_DB (a path or a sqlite:/// URL), else atlas.sqlite in the cache folder."""
    env = os.environ.get("TAV_ATLAS_DB", "").strip()
    if env:
        return path_from(env)
    from lib.model.loading import cache_root

    return cache_root() / "atlas.sqlite"


def path_from(spec: str | os.PathLike) -> Path:
    """A path or a `sqlite:///relative` / `sqlite:////absolute` URL -> a path."""
    text = str(spec)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif "://" in text:
        raise StoreError(f"Only SQLite is supported: use a path or sqlite:///path, not {text!r}.")
    return Path(text).expanduser()


def recording_allowed() -> bool:
    """The deployment switch: TAV_ATLAS_RECORD=0 turns recording off for every session."""
    return os.environ.get("TAV_ATLAS_RECORD", "1").strip().lower() not in ("0", "false", "no")


@dataclass(frozen=True)
class TokenRow:
    """One token to record. `step` is None for a prompt token."""

    step: int | None
    position: int
    token_id: int
    label: str
    context: str
    fingerprint: np.ndarray  # (20,) float32
    zone: str


@dataclass(frozen=True, eq=False)
class Fingerprints:
    """Fingerprints read back from the store, N rows.

    ids       (N,) int64    token row ids
    vectors   (N, 20) float32
    zones, labels, contexts, models: N strings each
    run_ids   (N,) int64
    steps     (N,) int64    generation step, -1 for a prompt token
    positions (N,) int64
    token_ids (N,) int64    vocabulary ids
    """

    ids: np.ndarray
    vectors: np.ndarray
    zones: tuple[str, ...]
    labels: tuple[str, ...]
    contexts: tuple[str, ...]
    models: tuple[str, ...]
    run_ids: np.ndarray
    steps: np.ndarray
    positions: np.ndarray
    token_ids: np.ndarray

    def __post_init__(self) -> None:
        n = self.ids.shape[0]
        if self.vectors.shape != (n, N_DIMS):
            raise ValueError(f"vectors must be ({n}, {N_DIMS})")
        for name in ("zones", "labels", "contexts", "models"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} must have {n} entries")
        for name in ("run_ids", "steps", "positions", "token_ids"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must be ({n},)")

    def __len__(self) -> int:
        return int(self.ids.shape[0])


class Store:
    """A fingerprint store in one SQLite file. Safe to use from many threads and processes:
    every call opens its own short-lived connection."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = default_path() if path is None else path_from(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as con:
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript(SCHEMA)
                con.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                found = con.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'"
                ).fetchone()[0]
        except (sqlite3.Error, OSError) as err:
            raise StoreError(f"Cannot open the fingerprint store {self.path}: {err}") from err
        if int(found) != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {found}; this version reads {SCHEMA_VERSION}."
            )

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            con.execute("PRAGMA foreign_keys=ON")
            yield con
        finally:
            con.close()

    # -- writing -------------------------------------------------------------------------

    def add_run(
        self,
        *,
        source: str,
        model: str,
        prompt: str,
        settings: dict,
        tokens: Sequence[TokenRow],
        owner: str | None = None,
        doc_key: str | None = None,
    ) -> int | None:
        """Write a run and its tokens in one transaction; its id, or None when a run with
        this `doc_key` is already stored (ingestion resumes without duplicates)."""
        rows = []
        for t in tokens:
            fp = np.asarray(t.fingerprint, dtype="<f4")
            if fp.shape != (N_DIMS,) or not np.isfinite(fp).all():
                raise ValueError(f"a fingerprint is {N_DIMS} finite numbers")
            rows.append((t.step, t.position, t.token_id, t.label, t.context, fp.tobytes(), t.zone))
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                if (
                    doc_key is not None
                    and con.execute("SELECT 1 FROM runs WHERE doc_key = ?", (doc_key,)).fetchone()
                ):
                    con.execute("ROLLBACK")
                    return None
                cur = con.execute(
                    "INSERT INTO runs (source, doc_key, owner, model, prompt, settings, created,"
                    " n_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        source,
                        doc_key,
                        owner,
                        model,
                        prompt,
                        json.dumps(settings),
                        time.time(),
                        len(rows),
                    ),
                )
                run_id = int(cur.lastrowid)
                con.executemany(
                    "INSERT INTO tokens (run_id, step, position, token_id, label, context,"
                    " fingerprint, zone) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(run_id, *r) for r in rows],
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return run_id

    def delete_owner(self, owner: str) -> int:
        """Delete every run recorded by `owner` (and its tokens); how many runs went."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            n = con.execute("DELETE FROM runs WHERE owner = ?", (owner,)).rowcount
            con.execute("COMMIT")
        return int(n)

    # -- reading -------------------------------------------------------------------------

    def doc_keys(self) -> frozenset[str]:
        """Every stored document key (what a distributed ingestion may skip)."""
        with self._connect() as con:
            rows = con.execute("SELECT doc_key FROM runs WHERE doc_key IS NOT NULL")
            return frozenset(k for (k,) in rows)

    def live_runs(self, run_ids) -> set[int]:
        """Which of `run_ids` are still stored (a user may have deleted theirs)."""
        ids = sorted({int(r) for r in run_ids})
        alive: set[int] = set()
        with self._connect() as con:
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                marks = ",".join("?" * len(part))
                alive |= {
                    r for (r,) in con.execute(f"SELECT id FROM runs WHERE id IN ({marks})", part)
                }
        return alive

    def has_doc(self, doc_key: str) -> bool:
        with self._connect() as con:
            return (
                con.execute("SELECT 1 FROM runs WHERE doc_key = ?", (doc_key,)).fetchone()
                is not None
            )

    def count(self, owner: str | None = None) -> tuple[int, int]:
        """(runs, tokens), for everyone or one owner."""
        where, args = ("WHERE owner = ?", (owner,)) if owner else ("", ())
        with self._connect() as con:
            runs, toks = con.execute(
                f"SELECT COUNT(*), COALESCE(SUM(n_tokens), 0) FROM runs {where}", args
            ).fetchone()
        return int(runs), int(toks)

    def stats(self) -> dict:
        """Counts by source, model and zone, and the time span of the runs."""
        with self._connect() as con:
            runs, toks = con.execute(
                "SELECT COUNT(*), COALESCE(SUM(n_tokens), 0) FROM runs"
            ).fetchone()
            by_source = dict(con.execute("SELECT source, COUNT(*) FROM runs GROUP BY source"))
            by_model = dict(con.execute("SELECT model, SUM(n_tokens) FROM runs GROUP BY model"))
            by_zone = dict(con.execute("SELECT zone, COUNT(*) FROM tokens GROUP BY zone"))
            first, last = con.execute("SELECT MIN(created), MAX(created) FROM runs").fetchone()
        return {
            "schema_version": SCHEMA_VERSION,
            "runs": int(runs),
            "tokens": int(toks),
            "runs_by_source": by_source,
            "tokens_by_model": {k: int(v) for k, v in by_model.items()},
            "tokens_by_zone": by_zone,
            "first_run": first,
            "last_run": last,
        }

    def run(self, run_id: int) -> dict | None:
        """One run's row (settings decoded), or None."""
        with self._connect() as con:
            con.row_factory = sqlite3.Row
            row = con.execute("SELECT * FROM runs WHERE id = ?", (int(run_id),)).fetchone()
        if row is None:
            return None
        out = dict(row)
        out["settings"] = json.loads(out["settings"])
        return out

    def fingerprints(
        self,
        *,
        since: float | None = None,
        limit: int | None = None,
        after_id: int = 0,
        until_id: int | None = None,
        source: str | None = None,
    ) -> Fingerprints:
        """Stored fingerprints in id order: of runs created at or after `since` (a Unix
        time), token ids in (`after_id`, `until_id`], at most `limit` rows (for reading in
        chunks), of runs from `source` ("corpus", "app", ...) if given."""
        sql = (
            "SELECT t.id, t.fingerprint, t.zone, t.label, t.context, r.model, t.run_id,"
            " COALESCE(t.step, -1), t.position, t.token_id"
            " FROM tokens t JOIN runs r ON r.id = t.run_id"
            " WHERE t.id > ?"
        )
        args: list = [int(after_id)]
        if until_id is not None:
            sql += " AND t.id <= ?"
            args.append(int(until_id))
        if source is not None:
            sql += " AND r.source = ?"
            args.append(source)
        if since is not None:
            sql += " AND r.created >= ?"
            args.append(float(since))
        sql += " ORDER BY t.id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        with self._connect() as con:
            rows = con.execute(sql, args).fetchall()
        n = len(rows)
        vectors = (
            np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(n, N_DIMS).copy()
            if n
            else np.zeros((0, N_DIMS), np.float32)
        )
        return Fingerprints(
            ids=np.array([r[0] for r in rows], dtype=np.int64),
            vectors=vectors,
            zones=tuple(r[2] for r in rows),
            labels=tuple(r[3] for r in rows),
            contexts=tuple(r[4] for r in rows),
            models=tuple(r[5] for r in rows),
            run_ids=np.array([r[6] for r in rows], dtype=np.int64),
            steps=np.array([r[7] for r in rows], dtype=np.int64),
            positions=np.array([r[8] for r in rows], dtype=np.int64),
            token_ids=np.array([r[9] for r in rows], dtype=np.int64),
        )
