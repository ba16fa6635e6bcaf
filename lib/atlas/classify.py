"""A discovery run, loaded for lookups: where a new fingerprint falls, with a confidence.

A new fingerprint is compared with every mapped one in the standardised 20-number space
(the space discovery started from): its `NEIGHBOURS` nearest mapped fingerprints vote on
its cluster (`lib.atlas.discovery.vote`), and it is drawn on the map at the mean 2D
position of the neighbours in that cluster. UMAP's own `transform` is not used here: it
would load numba into the app for a few points, and it places a point among the same
neighbours anyway.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.analysis.fingerprint import DIMENSIONS, zone
from lib.atlas.discovery import NEIGHBOURS, latest_run, typical_order, vote
from lib.atlas.store import SCHEMA_VERSION


@dataclass(frozen=True, eq=False)
class Placement:
    """Where n fingerprints fall on the map.

    xy          (n, 2) float32  mean map position of the nearest mapped fingerprints of
                                the cluster they vote for
    cluster     (n,) int64      the cluster they vote for (-1 = no family)
    confidence  (n,) float32    0-1: vote share x the voters' membership strength x
                                nearness (1 when the neighbours are as close as mapped
                                points' usually are, falling as they get further)
    zones       n zone names    the zone rules applied to each fingerprint
    """

    xy: np.ndarray
    cluster: np.ndarray
    confidence: np.ndarray
    zones: tuple[str, ...]

    def __post_init__(self) -> None:
        n = self.cluster.shape[0]
        if self.xy.shape != (n, 2) or self.confidence.shape != (n,) or len(self.zones) != n:
            raise ValueError(f"xy must be ({n}, 2), confidence ({n},), {n} zones")


# What a family does more (+) or less (-) than the map's average token, in plain words.
_PHRASES: dict[str, tuple[str | None, str | None]] = {
    "local_mass": ("looks at the last few tokens", "looks past the last few tokens"),
    "mid_mass": ("looks 10-99 tokens back", None),
    "long_mass": ("looks 100+ tokens back", "stays within 100 tokens"),
    "entropy": ("spreads its attention", "focuses sharply"),
    "hist_0": ("rests on the start of the text", "ignores the start of the text"),
    **{
        f"hist_{i}": (f"looks at the {part} of the text", None)
        for i, part in enumerate(["early part"] * 2 + ["middle"] * 2 + ["later part"] * 2, 1)
    },
    "hist_7": ("looks at the latest part of the text", None),
    **{
        f"layer_entropy_{g}": (f"{part} layers spread out", f"{part} layers focus")
        for g, part in enumerate(["early"] * 3 + ["middle"] * 3 + ["late"] * 2)
    },
}


def family_name(centroid, mean, std, n: int = 2) -> str:
    """A family's name from what sets its mean fingerprint apart from the whole map's:
    the `n` largest differences that have words, if over half a standard deviation."""
    z = (np.asarray(centroid, float) - np.asarray(mean, float)) / np.maximum(std, 1e-6)
    words: list[str] = []
    for d in np.argsort(-np.abs(z)):
        if len(words) >= n or abs(z[d]) < 0.5:
            break
        phrase = _PHRASES[DIMENSIONS[d]][0 if z[d] > 0 else 1]
        if phrase and phrase not in words:
            words.append(phrase)
    return ", ".join(words) or "an average token"


def cluster_label(cluster: int) -> str:
    """The classify response's label, as the service's contract writes it: "Cluster 3"
    ("Noise" for a fingerprint no family takes); the words are `cluster_description`."""
    return "Noise" if cluster < 0 else f"Cluster {cluster}"


class Atlas:
    """One finished discovery run: its points, clusters and the scaler it standardised with."""

    def __init__(self, folder: str | Path) -> None:
        import pyarrow.parquet as pq
        from sklearn.neighbors import NearestNeighbors

        self.folder = Path(folder)
        self.manifest = json.loads((self.folder / "manifest.json").read_text())
        self.points = pq.read_table(self.folder / "points.parquet").to_pandas()
        self.clusters = pq.read_table(self.folder / "clusters.parquet").to_pandas()
        with open(self.folder / "scaler.pkl", "rb") as f:
            self.scaler = pickle.load(f)
        self.vectors = np.stack(self.points["vector"].to_numpy()).astype(np.float32)
        self.xy = self.points[["x", "y"]].to_numpy(np.float32)
        self.labels = self.points["cluster"].to_numpy(np.int64)
        self.strength = self.points["strength"].to_numpy(np.float32)
        scaled = self.scaler.transform(self.vectors)
        self._knn = NearestNeighbors(n_neighbors=min(NEIGHBOURS, len(self.points))).fit(scaled)
        # How far a mapped point's neighbours typically are (itself left out): a new point
        # much further from its neighbours than that is outside every family.
        probe = scaled[:: max(1, len(scaled) // 2000)]
        k = min(NEIGHBOURS + 1, len(scaled))
        dist = NearestNeighbors(n_neighbors=k).fit(scaled).kneighbors(probe)[0][:, 1:]
        self.typical_distance = float(np.median(dist.mean(axis=1))) if dist.size else 1.0
        mean, std = self.vectors.mean(axis=0), self.vectors.std(axis=0)
        self.names = {
            int(r.cluster): f"Family {int(r.cluster)}: {family_name(r.centroid, mean, std)}"
            for r in self.clusters.itertuples()
        }

    @classmethod
    def latest(cls, output: str | Path) -> Atlas | None:
        folder = latest_run(output)
        return None if folder is None else cls(folder)

    @property
    def run_id(self) -> str:
        return str(self.manifest["run_id"])

    def family_name(self, cluster: int) -> str:
        """What the family is, in words ("Family 3: ..."), as the atlas page names it."""
        return self.names.get(int(cluster), "No family (noise)")

    def typical(self, cluster: int, shown: np.ndarray, k: int = 4) -> list[int]:
        """Up to `k` rows of the family, most typical first, among the rows whose text may
        be shown (`shown`: (n_points,) bool)."""
        rows = np.flatnonzero((self.labels == int(cluster)) & shown)
        if not rows.size:
            return []
        return rows[typical_order(self.xy[rows], self.strength[rows])[:k]].tolist()

    def locate(self, vectors: np.ndarray) -> Placement:
        v = np.asarray(vectors, dtype=np.float32).reshape(-1, len(DIMENSIONS))
        dist, idx = self._knn.kneighbors(self.scaler.transform(v))
        cluster, confidence = vote(idx, self.labels, self.strength)
        near = np.minimum(1.0, self.typical_distance / np.maximum(dist.mean(axis=1), 1e-9))
        confidence = (confidence * near).astype(np.float32)
        # Drawn among the neighbours of the family it joins (all of them for no family):
        # the mean of all 15 can fall between two families, on neither.
        agree = self.labels[idx] == cluster[:, None]
        weights = np.where(agree.any(axis=1, keepdims=True), agree, True).astype(np.float32)
        xy = (self.xy[idx] * weights[..., None]).sum(axis=1) / weights.sum(axis=1, keepdims=True)
        return Placement(xy.astype(np.float32), cluster, confidence, tuple(zone(x) for x in v))

    def classify(self, vector) -> dict:
        """The classify response for one fingerprint."""
        p = self.locate(np.asarray(vector, dtype=np.float32)[None])
        return {
            "manifold": {
                "zone": p.zones[0],
                "confidence": round(float(p.confidence[0]), 4),
                "cluster_id": int(p.cluster[0]),
                "cluster_label": cluster_label(int(p.cluster[0])),
                "cluster_description": self.family_name(int(p.cluster[0])),
            },
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
        }
