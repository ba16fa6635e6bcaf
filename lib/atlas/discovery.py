"""The discovery job: families of attention behaviour in the stored fingerprints.

The recipe, on the libraries the field uses: standardise the 20 numbers
(scikit-learn), lay them out in 2D with UMAP (`umap-learn`), find clusters with HDBSCAN
(scikit-learn's), and write Parquet (`pyarrow`):

    OUTPUT/RUN_ID/points.parquet    one row per fingerprint: token id, run, model, zone,
                                    label, context, x, y, cluster (-1 = noise), strength
    OUTPUT/RUN_ID/clusters.parquet  one row per cluster: size, 2D and 20-number centroid,
                                    dominant zone and its share, typical tokens in context
    OUTPUT/RUN_ID/manifest.json     run id, schema version, parameters, counts, timings
    OUTPUT/latest                   a symlink to the newest finished run (a file holding
                                    its id where symlinks are not allowed)

Large stores: UMAP and HDBSCAN are fitted on a sample (`umap_sample_size`); the other
fingerprints are read and placed in chunks (`batch_size`): UMAP's `transform` for the 2D
position, and the clusters of their nearest sample points for cluster and strength. After
the fit and after each chunk a checkpoint is written, so `resume` continues a stopped job.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from lib.analysis.fingerprint import zone
from lib.atlas.store import SCHEMA_VERSION, Store

NEIGHBOURS = 15  # sample points that vote on a chunk point's cluster


def default_output() -> Path:
    """$TAV_ATLAS_DIR, else discovery/ in the cache folder (where the app looks)."""
    env = os.environ.get("TAV_ATLAS_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    from lib.model.loading import cache_root

    return cache_root() / "discovery"


@dataclass
class DiscoveryConfig:
    db: str | None = None
    output: str = field(default_factory=lambda: str(default_output()))
    hours: float = 24.0  # fingerprints of runs from the last N hours; 0 = all
    min_cluster_size: int = 20
    umap_sample_size: int = 50_000
    batch_size: int = 20_000
    n_neighbors: int = 15
    max_memory_gb: float | None = None  # caps the sample: ~10 KB of UMAP state a point
    seed: int = 0
    run_id: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S"))

    def check(self) -> None:
        if self.min_cluster_size < 2:
            raise ValueError("--min-cluster-size must be at least 2")
        if self.umap_sample_size < 10 or self.batch_size < 1:
            raise ValueError("--umap-sample-size must be >= 10 and --batch-size >= 1")
        if self.hours < 0:
            raise ValueError("--hours must be >= 0 (0 = all)")

    def sample_cap(self) -> int:
        if self.max_memory_gb is None:
            return self.umap_sample_size
        return max(100, min(self.umap_sample_size, int(self.max_memory_gb * 1e9 / 10_000)))


class DiscoveryError(Exception):
    """Discovery cannot run (too few fingerprints, a missing checkpoint)."""


@dataclass(frozen=True)
class Step:
    """A progress report: what the job is doing, and how far it is (0-1)."""

    stage: str
    fraction: float


def _log(report: Callable[[Step], None] | None, stage: str, fraction: float) -> None:
    if report:
        report(Step(stage, fraction))


def _save_state(path: Path, state: dict) -> None:
    """Write the checkpoint state atomically: a kill mid-write leaves the old one."""
    tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def run_discovery(
    cfg: DiscoveryConfig,
    report: Callable[[Step], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict:
    """Run (or resume) one discovery job; returns its manifest.

    The job's fingerprints are fixed when it starts (their ids are saved with the
    checkpoint); a resume continues with the settings it started with. Fingerprints deleted
    while it runs are left out and counted in the manifest."""
    cfg.check()
    out = Path(cfg.output) / cfg.run_id
    ckpt = out / "checkpoint"
    state_file = ckpt / "state.json"
    store = Store(cfg.db)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    if state_file.exists():  # resume, with the settings the job started with
        state = json.loads(state_file.read_text())
        cfg = DiscoveryConfig(**(state["config"] | {"output": cfg.output, "db": cfg.db}))
        ids = np.load(ckpt / "ids.npy")
    else:
        since = None if cfg.hours == 0 else time.time() - cfg.hours * 3600
        ids = store.fingerprints(since=since).ids
        if len(ids) < max(cfg.min_cluster_size * 2, 10):
            raise DiscoveryError(
                f"Only {len(ids)} fingerprints to discover from (runs of the last "
                f"{cfg.hours:g} hours); ingest a corpus first or use --hours 0."
            )
        ckpt.mkdir(parents=True, exist_ok=True)
        np.save(ckpt / "ids.npy", ids)
        # the store by name: a PostgreSQL URL's password stays out of the files
        state = {"config": asdict(cfg) | {"db": store.name}, "fitted": False, "chunks_done": 0}
        _save_state(state_file, state)

    import umap
    from sklearn.cluster import HDBSCAN
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import StandardScaler

    if not state["fitted"]:
        t = time.perf_counter()
        _log(report, "reading the sample", 0.02)
        rng = np.random.default_rng(cfg.seed)
        pick = np.sort(rng.choice(ids, size=min(len(ids), cfg.sample_cap()), replace=False))
        sample_ids, vectors = _vectors(store, pick)
        scaler = StandardScaler().fit(vectors)
        _log(report, f"UMAP on {len(sample_ids):,} fingerprints", 0.1)
        reducer = umap.UMAP(
            n_components=2,
            n_neighbors=cfg.n_neighbors,
            min_dist=0.0,
            random_state=cfg.seed,
            n_jobs=1,
        )
        xy = reducer.fit_transform(scaler.transform(vectors)).astype(np.float32)
        _log(report, "HDBSCAN", 0.5)
        hdb = HDBSCAN(min_cluster_size=cfg.min_cluster_size, copy=True).fit(xy)
        with open(ckpt / "fit.pkl", "wb") as f:
            pickle.dump(
                {
                    "scaler": scaler,
                    "umap": reducer,
                    "sample_ids": sample_ids,
                    "xy": xy,
                    "labels": hdb.labels_,
                    "strength": hdb.probabilities_.astype(np.float32),
                },
                f,
            )
        state["fitted"] = True
        _save_state(state_file, state)
        timings["fit_s"] = time.perf_counter() - t
    with open(ckpt / "fit.pkl", "rb") as f:
        fit = pickle.load(f)
    rest = np.setdiff1d(ids, fit["sample_ids"])
    chunks = [rest[i : i + cfg.batch_size] for i in range(0, len(rest), cfg.batch_size)]
    knn = NearestNeighbors(n_neighbors=min(NEIGHBOURS, len(fit["xy"]))).fit(fit["xy"])
    t = time.perf_counter()
    for c in range(state["chunks_done"], len(chunks)):
        if should_stop():
            raise KeyboardInterrupt(f"stopped; resume with --resume {cfg.run_id}")
        _log(report, f"placing chunk {c + 1} of {len(chunks)}", 0.55 + 0.35 * c / len(chunks))
        found, vectors = _vectors(store, chunks[c])
        xy = fit["umap"].transform(fit["scaler"].transform(vectors)).astype(np.float32)
        labels, strength = vote(knn.kneighbors(xy)[1], fit["labels"], fit["strength"])
        np.savez(ckpt / f"chunk_{c:05d}.npz", ids=found, xy=xy, labels=labels, strength=strength)
        state["chunks_done"] = c + 1
        _save_state(state_file, state)
    timings["place_s"] = time.perf_counter() - t

    _log(report, "writing Parquet", 0.92)
    parts = [(fit["sample_ids"], fit["xy"], fit["labels"], fit["strength"], True)]
    for c in range(len(chunks)):
        z = np.load(ckpt / f"chunk_{c:05d}.npz")
        parts.append((z["ids"], z["xy"], z["labels"], z["strength"], False))
    manifest = write_outputs(store, cfg, out, parts, len(ids), fit["scaler"], timings, started)
    shutil.rmtree(ckpt, ignore_errors=True)
    point_latest(Path(cfg.output), cfg.run_id)
    _log(report, "done", 1.0)
    return manifest


def _vectors(store: Store, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids still stored, their fingerprints) for sorted `ids`, read over their id span."""
    if len(ids) == 0:
        return ids, np.zeros((0, 20), np.float32)
    fp = store.fingerprints(after_id=int(ids[0]) - 1, until_id=int(ids[-1]))
    keep = np.isin(fp.ids, ids)
    return fp.ids[keep], fp.vectors[keep]


def vote(idx: np.ndarray, labels: np.ndarray, strength: np.ndarray):
    """Cluster and strength of points from their neighbours `idx` (n, k) among points with
    known `labels` and HDBSCAN `strength`: the most common cluster (noise votes too);
    strength = its share of the votes times the agreeing neighbours' mean strength."""
    votes = labels[idx]  # (n, k)
    out_l = np.empty(len(idx), dtype=np.int64)
    out_s = np.empty(len(idx), dtype=np.float32)
    for i, (row, nb) in enumerate(zip(votes, idx, strict=True)):
        values, counts = np.unique(row, return_counts=True)
        # The most votes; on a tie a family wins over noise.
        best = values[max(range(len(values)), key=lambda j: (counts[j], values[j] >= 0))]
        agree = row == best
        out_l[i] = best
        out_s[i] = 0.0 if best < 0 else agree.mean() * strength[nb[agree]].mean()
    return out_l, out_s


def typical_order(xy: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """A family's members, most typical first: the strongest nearest its 2D centre.
    xy (n, 2), strength (n,) -> (n,) indices."""
    score = np.linalg.norm(xy - xy.mean(axis=0), axis=1) - strength
    return np.argsort(score, kind="stable")


def write_outputs(store, cfg, out: Path, parts, n_job: int, scaler, timings, started) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = np.concatenate([p[0] for p in parts])
    order = np.argsort(ids)
    ids = ids[order]
    xy = np.concatenate([p[1] for p in parts])[order]
    labels = np.concatenate([p[2] for p in parts])[order]
    strength = np.concatenate([p[3] for p in parts])[order]
    in_sample = np.concatenate([np.full(len(p[0]), p[4]) for p in parts])[order]
    # Join by id: rows deleted since they were placed are dropped, not misaligned.
    fp = store.fingerprints(after_id=int(ids[0]) - 1, until_id=int(ids[-1]))
    sel = np.flatnonzero(np.isin(fp.ids, ids))
    keep = np.isin(ids, fp.ids[sel])
    ids, xy, labels, strength, in_sample = (a[keep] for a in (ids, xy, labels, strength, in_sample))
    vectors = fp.vectors[sel]
    # Zones by the rules in use now (the store keeps the zone given when it was recorded).
    zones = np.array([zone(v) for v in vectors], dtype=object)
    contexts = np.array(fp.contexts, dtype=object)[sel]
    points = pa.table(
        {
            "id": ids,
            "run_id": fp.run_ids[sel],
            "step": fp.steps[sel],
            "position": fp.positions[sel],
            "token_id": fp.token_ids[sel],
            "model": np.array(fp.models, dtype=object)[sel],
            "zone": zones,
            "label": np.array(fp.labels, dtype=object)[sel],
            "context": contexts,
            "x": xy[:, 0],
            "y": xy[:, 1],
            "cluster": labels,
            "strength": strength,
            "in_sample": in_sample,
            "vector": list(vectors),
        }
    )
    pq.write_table(points, out / "points.parquet")
    rows = []
    for c in sorted(set(labels.tolist()) - {-1}):
        m = labels == c
        zs, zc = np.unique(zones[m], return_counts=True)
        centre = xy[m].mean(axis=0)
        texts = contexts[m][typical_order(xy[m], strength[m])]
        typical = [str(t) for t in texts if t][:6]  # a private run's tokens have no text
        rows.append(
            {
                "cluster": int(c),
                "size": int(m.sum()),
                "x": float(centre[0]),
                "y": float(centre[1]),
                "centroid": vectors[m].mean(axis=0).tolist(),
                "dominant_zone": str(zs[np.argmax(zc)]),
                "zone_share": float(zc.max() / m.sum()),
                "typical": typical,
            }
        )
    clusters = pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("cluster", pa.int64()),
                ("size", pa.int64()),
                ("x", pa.float64()),
                ("y", pa.float64()),
                ("centroid", pa.list_(pa.float64())),
                ("dominant_zone", pa.string()),
                ("zone_share", pa.float64()),
                ("typical", pa.list_(pa.string())),
            ]
        ),
    )
    pq.write_table(clusters, out / "clusters.parquet")
    with open(out / "scaler.pkl", "wb") as f:
        pickle.dump(scaler, f)
    manifest = {
        "run_id": cfg.run_id,
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "db": store.name,
        "config": asdict(cfg) | {"db": store.name},
        "n_points": int(len(ids)),
        "deleted_while_running": int(n_job - len(ids)),
        "n_sample": int(in_sample.sum()),
        "n_clusters": len(rows),
        "noise": int((labels < 0).sum()),
        "timings_s": {**timings, "total_s": time.perf_counter() - started},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def point_latest(output: Path, run_id: str) -> None:
    """OUTPUT/latest -> RUN_ID: a symlink, or a file with the id where links fail."""
    link = output / "latest"
    tmp = output / f".latest-{uuid.uuid4().hex}"
    try:
        tmp.symlink_to(run_id, target_is_directory=True)
    except OSError:
        tmp.write_text(run_id)
    os.replace(tmp, link)


def latest_run(output: str | Path) -> Path | None:
    """The newest finished run's folder, or None."""
    link = Path(output) / "latest"
    if link.is_symlink():
        target = link.resolve()
    elif link.is_file():
        target = Path(output) / link.read_text().strip()
    else:
        return None
    return target if (target / "manifest.json").exists() else None
