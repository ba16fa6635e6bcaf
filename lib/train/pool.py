"""The class's pool of induction-lab runs: each student adds their own run, the teacher's
view overlays every curve.

A pooled run holds numbers and a name only: the settings (the seed most of all), and the
curves of the lab's history (the losses on both halves, the best induction score), with
the step of its phase change by the lab's own rule (`InductionHistory.phase_change`). No
text a student typed goes in but the name they choose to show, and nothing is pooled
unless they press the button. The pool is one SQLite file (`TAV_CLASS_POOL`, else
class_pool.sqlite in the cache folder; "off" keeps no pool), so every session of the app
server, and every server process on the machine, sees the same class.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lib.train.induction import InductionConfig, InductionHistory

MAX_NAME = 40
MAX_RUNS = 500  # a class, many times over; the oldest go first
MAX_POINTS = 200  # evaluations kept of a run (evenly spaced; the first, last and phase's kept)

SCHEMA = """
CREATE TABLE IF NOT EXISTS pooled (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    added REAL NOT NULL,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    curves TEXT NOT NULL
);
"""


@dataclass(frozen=True, eq=False)
class PooledRun:
    """One student's run in the pool; E evaluations.

    steps           (E,) int64    training steps at each evaluation
    loss_first      (E,) float64  the first (unpredictable) half's loss
    loss_second     (E,) float64  the second (copyable) half's loss
    best_induction  (E,) float64  the best induction score of any head
    phase_step      the step of the phase change (the first evaluation whose best induction
                    score reaches 0.5), or None when it never came
    """

    id: int
    added: float
    name: str
    config: InductionConfig
    steps: np.ndarray
    loss_first: np.ndarray
    loss_second: np.ndarray
    best_induction: np.ndarray
    phase_step: int | None

    def __post_init__(self) -> None:
        E = self.steps.shape[0]
        for name in ("loss_first", "loss_second", "best_induction"):
            if getattr(self, name).shape != (E,):
                raise ValueError(f"{name} must be ({E},)")

    @property
    def seed(self) -> int:
        return self.config.seed


def clean_name(name: str, fallback: str) -> str:
    """What a student typed as their name, as the pool shows it: one line, printable,
    at most MAX_NAME characters; `fallback` when nothing is left."""
    kept = "".join(c if unicodedata.category(c)[0] not in "CZ" else " " for c in name)
    kept = " ".join(kept.split())[:MAX_NAME]
    return kept or fallback


def kept_evaluations(n: int, phase: int | None, limit: int = MAX_POINTS) -> np.ndarray:
    """Which of a run's n evaluations to keep: all of them up to `limit` (at least 2), else
    about `limit` evenly spaced ones with the first, the last and the phase change's."""
    if n <= limit:
        return np.arange(n)
    keep = set(np.linspace(0, n - 1, max(2, limit - 1)).round().astype(int).tolist())
    if phase is not None:
        keep.add(phase)
    return np.array(sorted(keep))


def pool_path() -> Path | None:
    """$TAV_CLASS_POOL (a file; "off" for no pool), else class_pool.sqlite in the cache
    folder."""
    env = os.environ.get("TAV_CLASS_POOL", "").strip()
    if env.lower() in ("0", "off", "no", "false"):
        return None
    if env:
        return Path(env).expanduser()
    from lib.model.loading import cache_root

    return cache_root() / "class_pool.sqlite"


def _config(fields: dict) -> InductionConfig:
    """A pooled run's settings, read by this version: fields it does not know are left out
    (a pool file outlives upgrades)."""
    known = {f.name for f in dataclasses.fields(InductionConfig)}
    return InductionConfig(**{k: v for k, v in fields.items() if k in known})


class ClassPool:
    """The pool in one SQLite file; every call opens its own connection (sessions are
    threads, servers are processes)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect()
        try:
            db.executescript(SCHEMA)
        finally:
            db.close()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def add(self, owner: str, name: str, config: InductionConfig, h: InductionHistory) -> int:
        """Pool a run; its id. The name is cleaned (`clean_name`); blank gives "Run <id>"."""
        phase = h.phase_change()
        keep = kept_evaluations(len(h.steps), phase)
        best = h.induction.reshape(len(h.steps), -1).max(axis=1)
        curves = {
            "steps": h.steps[keep].tolist(),
            "loss_first": h.loss_first[keep].astype(float).tolist(),
            "loss_second": h.loss_second[keep].astype(float).tolist(),
            "best_induction": best[keep].astype(float).tolist(),
            "phase_step": None if phase is None else int(h.steps[phase]),
        }
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            (rid,) = db.execute(
                "INSERT INTO pooled (added, owner, name, config, curves) VALUES (?, ?, '', ?, ?)"
                " RETURNING id",
                (time.time(), owner, json.dumps(asdict(config)), json.dumps(curves)),
            ).fetchone()
            db.execute(
                "UPDATE pooled SET name = ? WHERE id = ?", (clean_name(name, f"Run {rid}"), rid)
            )
            db.execute(
                "DELETE FROM pooled WHERE id NOT IN (SELECT id FROM pooled ORDER BY id DESC "
                "LIMIT ?)",
                (MAX_RUNS,),
            )
            db.execute("COMMIT")
        finally:
            db.close()
        return int(rid)

    def runs(self, hours: float | None = None) -> list[PooledRun]:
        """Every pooled run (of the last `hours`), oldest first."""
        since = 0.0 if not hours else time.time() - hours * 3600
        db = self._connect()
        try:
            rows = db.execute(
                "SELECT id, added, name, config, curves FROM pooled WHERE added >= ? ORDER BY id",
                (since,),
            ).fetchall()
        finally:
            db.close()
        out = []
        for rid, added, name, config, curves in rows:
            c = json.loads(curves)
            out.append(
                PooledRun(
                    id=int(rid),
                    added=float(added),
                    name=str(name),
                    config=_config(json.loads(config)),
                    steps=np.asarray(c["steps"], np.int64),
                    loss_first=np.asarray(c["loss_first"], np.float64),
                    loss_second=np.asarray(c["loss_second"], np.float64),
                    best_induction=np.asarray(c["best_induction"], np.float64),
                    phase_step=c["phase_step"],
                )
            )
        return out

    def settings(self, hours: float | None = None) -> list[tuple[int, InductionConfig]]:
        """Every pooled run's id and settings (of the last `hours`), oldest first: the
        curves are not read."""
        since = 0.0 if not hours else time.time() - hours * 3600
        db = self._connect()
        try:
            rows = db.execute(
                "SELECT id, config FROM pooled WHERE added >= ? ORDER BY id", (since,)
            ).fetchall()
        finally:
            db.close()
        return [(int(rid), _config(json.loads(config))) for rid, config in rows]

    def mine(self, owner: str) -> list[int]:
        """The ids `owner` pooled."""
        db = self._connect()
        try:
            rows = db.execute("SELECT id FROM pooled WHERE owner = ? ORDER BY id", (owner,))
            return [int(r[0]) for r in rows.fetchall()]
        finally:
            db.close()

    def remove(self, owner: str, run_id: int) -> bool:
        """Take back one of `owner`'s runs; False when it is not theirs (or gone)."""
        db = self._connect()
        try:
            cur = db.execute("DELETE FROM pooled WHERE id = ? AND owner = ?", (run_id, owner))
            return cur.rowcount == 1
        finally:
            db.close()
