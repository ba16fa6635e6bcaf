"""The fingerprint store: one SQLite file (or one PostgreSQL database, `backends`) that
many sessions, jobs and servers write at once.

File layout (version `STORE_VERSION`, created on first use; a version 1 file is upgraded
in place):

    runs        one text the model read or wrote: where it came from (app, corpus, file,
                api), a unique key (ingestion resumes by it; the same run recorded twice is
                one run), whether its text may be shown to others, model, prompt, settings
                (JSON), time
    run_owners  the sessions that recorded a run (a user deletes what they recorded; a run
                goes when its last owner deletes it)
    tokens      one token of a run: generation step (NULL for a prompt token), position, id,
                display text, a short context, its 20-number fingerprint (float32 bytes) and
                zone

A run's text (its prompt, and its tokens' labels and contexts) is given out only when the
run is shared: a student's runs are recorded only when they choose to share them, and runs
recorded before that choice existed (version 1 files) are kept for the map without text.

Every run and its tokens are written in one transaction, so a killed job leaves whole runs
or nothing; WAL mode and a busy timeout let 30 writers share the file without errors. Ids
are never reused (AUTOINCREMENT): a map made before a deletion cannot point at a newer run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.analysis.fingerprint import DIMENSIONS
from lib.atlas.backends import PostgreSQL, SQLite, is_postgres

SCHEMA_VERSION = 1  # of the service's answers and discovery's files
STORE_VERSION = 2  # of this file's layout
N_DIMS = len(DIMENSIONS)


@functools.cache
def schema() -> str:
    """The store's tables, from `schema.sql` (the one source of truth, shipped beside this
    module), as the statements the store executes."""
    return (Path(__file__).with_name("schema.sql")).read_text(encoding="utf-8")


# Version 1 kept one owner per run, recorded every app run by default and recorded the
# same run again for every session that made it. Its `owner` column stays, empty (dropping
# a column needs SQLite 3.35); a writer of version 1 still running adds private runs.
UPGRADE_FROM_1 = """
ALTER TABLE runs ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;
UPDATE runs SET shared = 1 WHERE source != 'app';
CREATE TABLE run_owners (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    PRIMARY KEY (run_id, owner)
);
INSERT INTO run_owners SELECT id, owner FROM runs WHERE owner IS NOT NULL;
DROP INDEX IF EXISTS runs_owner;
UPDATE runs SET owner = NULL;
CREATE INDEX run_owners_owner ON run_owners(owner);
"""


def _statements() -> list[str]:
    """schema.sql as statements, its comments left out."""
    lines = [ln for ln in schema().splitlines() if not ln.lstrip().startswith("--")]
    return [st for st in "\n".join(lines).split(";") if st.strip()]


def run_key(model: str, prompt: str, settings: dict, token_ids: Sequence[int]) -> str:
    """The key of a generated run: the same model, prompt, settings and generated tokens
    are the same run, whoever made it."""
    h = hashlib.sha256(json.dumps([model, prompt, settings], sort_keys=True).encode())
    h.update(np.asarray(token_ids, dtype="<i8").tobytes())
    return "app:" + h.hexdigest()


class StoreError(OSError):
    """The store cannot be opened or is of another schema version."""


def default_spec() -> str:
    """$TAV_ATLAS_DB (a path, a sqlite:/// URL or a postgresql:// URL), else atlas.sqlite
    in the cache folder."""
    env = os.environ.get("TAV_ATLAS_DB", "").strip()
    if env:
        return env if is_postgres(env) else str(path_from(env))
    from lib.model.loading import cache_root

    return str(cache_root() / "atlas.sqlite")


def path_from(spec: str | os.PathLike) -> Path:
    """A path or a `sqlite:///relative` / `sqlite:////absolute` URL -> a path."""
    text = str(spec)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif "://" in text:
        raise StoreError(f"Use a path, sqlite:///path or postgresql://host/database, not {text!r}.")
    return Path(text).expanduser()


def backend_for(spec: str | os.PathLike) -> SQLite | PostgreSQL:
    text = str(spec)
    return PostgreSQL(text) if is_postgres(text) else SQLite(path_from(text))


RECORDING_MODES = ("off", "ask", "class")


def recording_mode() -> str:
    """The deployment's choice, TAV_ATLAS_RECORD: "ask" (the default: each student decides,
    and nothing of theirs is recorded until they do), "class" (every session shares its
    runs unless the student switches it off: for a class that agreed) or "off"."""
    value = os.environ.get("TAV_ATLAS_RECORD", "ask").strip().lower()
    if value in ("0", "false", "no", "off"):
        return "off"
    return "class" if value in ("1", "true", "yes", "on", "class") else "ask"


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
    """A fingerprint store: a SQLite file (a path) or a PostgreSQL database (a
    postgresql:// URL). Safe to use from many threads and processes: every call opens its
    own short-lived connection.

    `spec` opens the same store again; `name` says which it is (no password); `path` is
    the SQLite file (None for PostgreSQL)."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        spec = default_spec() if path is None else path
        try:
            self.backend = backend_for(spec)
        except ValueError as err:  # a URL that does not parse (its port, ...)
            raise StoreError(f"Cannot open the fingerprint store: {err}") from err
        self.path, self.spec, self.name = self.backend.path, self.backend.spec, self.backend.name
        try:
            self.backend.prepare()
            errors = self.backend.errors()
        except (OSError, ValueError) as err:
            raise StoreError(f"Cannot open the fingerprint store {self.name}: {err}") from err
        try:
            found = self._create()
        except (*errors, OSError, ValueError) as err:
            raise StoreError(f"Cannot open the fingerprint store {self.name}: {err}") from err
        if found != STORE_VERSION:
            raise StoreError(
                f"{self.name} has schema version {found}; this version reads {STORE_VERSION}."
            )

    def _create(self) -> int:
        """Create the tables (or upgrade a version 1 file); the layout version found."""
        tables = self.backend.tables(_statements())
        with self._connect() as con:
            if self.backend.dialect == "sqlite":
                con.execute("PRAGMA journal_mode=WAL")
            elif _version(con) == STORE_VERSION:
                # made already: an app server's role need not be allowed to create tables
                return STORE_VERSION
            self.backend.begin(con)  # one process creates or upgrades the store
            con.execute(tables[0])  # meta
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            found = int(row[0]) if row else STORE_VERSION
            upgraded = found == 1  # only SQLite files are that old
            if upgraded:
                _upgrade_from_1(con)
                found = STORE_VERSION
            if found == STORE_VERSION:
                for statement in tables:
                    con.execute(statement)
                con.execute(
                    "INSERT INTO meta VALUES ('schema_version', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(STORE_VERSION),),
                )
            con.execute("COMMIT")
            if upgraded:
                con.execute("VACUUM")  # the text taken out leaves no copy in free pages
        return found

    def _connect(self):
        return self.backend.connect()

    def is_named(self, name: str | None) -> bool:
        """Whether `name` (a map's manifest `db`) is this store."""
        if not name:
            return False
        if self.path is None:
            return name == self.name
        return "://" not in name and Path(name).resolve() == self.path.resolve()

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
        shared: bool = True,
    ) -> int | None:
        """Write a run and its tokens in one transaction; its id, or None when a run with
        this `doc_key` is already stored (ingestion resumes without duplicates; the same
        generated run, keyed by `run_key`, is kept once, with `owner` added to its owners)."""
        rows = []
        for t in tokens:
            fp = np.asarray(t.fingerprint, dtype="<f4")
            if fp.shape != (N_DIMS,) or not np.isfinite(fp).all():
                raise ValueError(f"a fingerprint is {N_DIMS} finite numbers")
            rows.append((t.step, t.position, t.token_id, t.label, t.context, fp.tobytes(), t.zone))
        with self._connect() as con:
            self.backend.begin(con)
            try:
                known = (
                    con.execute("SELECT id FROM runs WHERE doc_key = ?", (doc_key,)).fetchone()
                    if doc_key is not None
                    else None
                )
                if known is not None:
                    if owner is not None:
                        con.execute(
                            "INSERT INTO run_owners VALUES (?, ?) ON CONFLICT DO NOTHING",
                            (known[0], owner),
                        )
                    if shared:  # the same run kept private until now: shared by this owner
                        _share(con, known[0], prompt, settings, rows)
                    con.execute("COMMIT")
                    return None
                cur = con.execute(
                    "INSERT INTO runs (source, doc_key, shared, model, prompt, settings, created,"
                    " n_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (
                        source,
                        doc_key,
                        int(shared),
                        model,
                        prompt,
                        json.dumps(settings),
                        time.time(),
                        len(rows),
                    ),
                )
                run_id = int(cur.fetchone()[0])
                if owner is not None:
                    con.execute("INSERT INTO run_owners VALUES (?, ?)", (run_id, owner))
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
        """Take back what `owner` recorded: a run goes with its tokens once no other owner
        has it. How many of the owner's runs there were."""
        with self._connect() as con:
            self.backend.begin(con)
            mine = [
                r for (r,) in con.execute("SELECT run_id FROM run_owners WHERE owner = ?", (owner,))
            ]
            con.execute("DELETE FROM run_owners WHERE owner = ?", (owner,))
            con.executemany(
                "DELETE FROM runs WHERE id = ? AND id NOT IN (SELECT run_id FROM run_owners)",
                [(r,) for r in mine],
            )
            con.execute("COMMIT")
        return len(mine)

    # -- reading -------------------------------------------------------------------------

    def doc_keys(self) -> frozenset[str]:
        """Every stored document key (what a distributed ingestion may skip)."""
        with self._connect() as con:
            rows = con.execute("SELECT doc_key FROM runs WHERE doc_key IS NOT NULL")
            return frozenset(k for (k,) in rows)

    def shown_runs(self, run_ids) -> set[int]:
        """Which of `run_ids` may be shown with their text: still stored (a user may have
        deleted theirs) and shared."""
        ids = sorted({int(r) for r in run_ids})
        shown: set[int] = set()
        with self._connect() as con:
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                marks = ",".join("?" * len(part))
                shown |= {
                    r
                    for (r,) in con.execute(
                        f"SELECT id FROM runs WHERE shared = 1 AND id IN ({marks})", part
                    )
                }
        return shown

    def has_doc(self, doc_key: str) -> bool:
        with self._connect() as con:
            return (
                con.execute("SELECT 1 FROM runs WHERE doc_key = ?", (doc_key,)).fetchone()
                is not None
            )

    def count(self, owner: str | None = None) -> tuple[int, int]:
        """(runs, tokens), for everyone or one owner."""
        where, args = (
            ("WHERE id IN (SELECT run_id FROM run_owners WHERE owner = ?)", (owner,))
            if owner
            else ("", ())
        )
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
        """One run's row (settings decoded, `owners`: how many sessions recorded it), or
        None. A run that is not shared comes without its prompt and settings (forced
        tokens are text too)."""
        with self._connect() as con:
            cur = con.execute(
                "SELECT r.*, (SELECT COUNT(*) FROM run_owners o WHERE o.run_id = r.id) AS owners"
                " FROM runs r WHERE id = ?",
                (int(run_id),),
            )
            row = cur.fetchone()
            names = [d[0] for d in cur.description]
        if row is None:
            return None
        out = dict(zip(names, row, strict=True))
        out["settings"] = json.loads(out["settings"])
        if not out["shared"]:
            out["prompt"], out["settings"] = "", {}
        out.pop("owner", None)  # version 1's column, empty
        return out

    def token_ids(self, run_id: int) -> dict[int, int]:
        """position -> vocabulary id of the tokens kept of a shared run (a run that is
        not shared gives none: its ids are its text)."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT t.position, t.token_id FROM tokens t JOIN runs r ON r.id = t.run_id"
                " WHERE t.run_id = ? AND r.shared = 1",
                (int(run_id),),
            )
            return {int(p): int(i) for p, i in rows}

    def fingerprints(
        self,
        *,
        since: float | None = None,
        limit: int | None = None,
        after_id: int = 0,
        until_id: int | None = None,
        source: str | None = None,
        newest: bool = False,
    ) -> Fingerprints:
        """Stored fingerprints in id order: of runs created at or after `since` (a Unix
        time), token ids in (`after_id`, `until_id`], at most `limit` rows (for reading in
        chunks; with `newest`, the last `limit`), of runs from `source` ("corpus", "app",
        ...) if given. Tokens of runs that are not shared come without their label,
        context and vocabulary id (-1)."""
        sql = (
            "SELECT t.id, t.fingerprint, t.zone,"
            " CASE WHEN r.shared = 1 THEN t.label ELSE '' END,"
            " CASE WHEN r.shared = 1 THEN t.context ELSE '' END, r.model, t.run_id,"
            " COALESCE(t.step, -1), t.position,"
            " CASE WHEN r.shared = 1 THEN t.token_id ELSE -1 END"
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
        sql += " ORDER BY t.id" + (" DESC" if newest else "")
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        with self._connect() as con:
            rows = con.execute(sql, args).fetchall()
        if newest:
            rows.reverse()
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


def _version(con) -> int | None:
    """The layout version a PostgreSQL store says it has, or None before it is made."""
    if con.execute("SELECT to_regclass('meta')").fetchone()[0] is None:
        return None
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else None


def _upgrade_from_1(con: sqlite3.Connection) -> None:
    """Version 1 -> 2, inside the caller's transaction: app runs become private (they were
    recorded without being asked), and copies of one generated run become one run with
    all their owners."""
    for statement in UPGRADE_FROM_1.split(";"):
        if statement.strip():
            con.execute(statement)
    runs = con.execute(
        "SELECT id, model, prompt, settings FROM runs WHERE source = 'app' ORDER BY id"
    ).fetchall()
    first: dict[str, int] = {}
    for rid, model, prompt, settings in runs:
        ids = [i for (i,) in con.execute(
            "SELECT token_id FROM tokens WHERE run_id = ? ORDER BY position, id", (rid,)
        )]  # fmt: skip
        key = run_key(model, prompt, json.loads(settings), ids)
        if key in first:
            con.execute(
                "INSERT OR IGNORE INTO run_owners SELECT ?, owner FROM run_owners WHERE run_id = ?",
                (first[key], rid),
            )
            con.execute("DELETE FROM runs WHERE id = ?", (rid,))
        else:
            first[key] = rid
            con.execute("UPDATE runs SET doc_key = ? WHERE id = ?", (key, rid))
    # Their text goes: kept, no one could ever take it back (its sessions are gone). The
    # key stays, so a student who shares the same run later gives it its text again.
    con.execute("UPDATE runs SET prompt = '', settings = '{}' WHERE source = 'app'")
    con.execute(
        "UPDATE tokens SET label = '', context = '', token_id = -1"
        " WHERE run_id IN (SELECT id FROM runs WHERE source = 'app')"
    )


def _share(con: sqlite3.Connection, run_id: int, prompt: str, settings: dict, rows) -> None:
    """Make a private run shared, with the text of the same run just recorded again (a
    private run keeps none): its prompt and settings, and each token's label, context and
    id, matched by position."""
    con.execute(
        "UPDATE runs SET shared = 1, prompt = ?, settings = ? WHERE id = ? AND shared = 0",
        (prompt, json.dumps(settings), run_id),
    )
    con.executemany(
        "UPDATE tokens SET label = ?, context = ?, token_id = ? WHERE run_id = ? AND position = ?",
        [(r[3], r[4], r[2], run_id, r[1]) for r in rows],
    )
