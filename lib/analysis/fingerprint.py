"""Attention fingerprints: 20 numbers that summarise where one generated token looked.

The layout, for the query row that produced each generated token (its attention
over the K keys it could see; key K-1 is the query itself, distance = K-1-key):

    0      local_mass   mass at distance 0-9 tokens
    1      mid_mass     mass at distance 10-99
    2      long_mass    mass at distance 100 or more
    3      entropy      how spread out each head looks: its row's entropy divided by
                        log(number of keys) (0 = one key, 1 = uniform), mean over all heads
    4-11   histogram    mass in 8 equal bins of position, from the start (4) to the query (11)
    12-19  layer_entropy  the same entropy averaged over the heads of 8 contiguous groups of
                          layers (first layers in 12, last in 19)

Masses and histogram use the mean row over all layers and heads; entropies use each head's
row. With `exclude_first` (the "hide the first-token sink" switch) `lib.measures.hide_sink`
is applied to the rows each number is read from: the mean row for masses and histogram (the
same row the matrices page shows), each head's row for entropies.

Zones, first matching rule wins, with thresholds from `ZoneRules` (the values in
`zone_rules.json`, calibrated on the built-in corpus by `python -m lib.atlas calibrate`):

    syntax_floor      local_mass >= syntax_local and entropy <= syntax_entropy
    long_range        long_mass >= long_mass
    semantic_bridge   mid_mass >= mid_mass
    structure_ripple  >= 2 separated peaks in the inner bins 1-6 of the histogram
                      (periodic: looks back in beats; the first bin, the sink, and the
                      last, the latest tokens, are left out: nearly every token has both)
    diffuse           anything else                         (spread out, no clear target)

A peak is a bin holding >= peak_mass that is larger than both neighbours; peaks are
separated when at least one bin lies between them.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from lib.measures import hide_sink
from lib.model.result import GenerationResult

Zone = Literal["syntax_floor", "semantic_bridge", "structure_ripple", "long_range", "diffuse"]
ZONES: tuple[Zone, ...] = (
    "syntax_floor",
    "semantic_bridge",
    "structure_ripple",
    "long_range",
    "diffuse",
)
DIMENSIONS: tuple[str, ...] = (
    "local_mass",
    "mid_mass",
    "long_mass",
    "entropy",
    *(f"hist_{i}" for i in range(8)),
    *(f"layer_entropy_{i}" for i in range(8)),
)
LOCAL, MID = 10, 100  # distance bands: [0, 10), [10, 100), [100, inf)
RULES_FILE = Path(__file__).with_name("zone_rules.json")


@dataclass(frozen=True)
class ZoneRules:
    """The zone thresholds, and where they came from (said on the pages)."""

    syntax_local: float = 0.6
    syntax_entropy: float = 0.6
    long_mass: float = 0.4
    mid_mass: float = 0.4
    peak_mass: float = 0.15
    source: str = "chosen by hand"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


@functools.cache
def default_rules() -> ZoneRules:
    """The calibrated rules shipped with the app (read once), or the hand-set ones."""
    if RULES_FILE.exists():
        return ZoneRules(**json.loads(RULES_FILE.read_text()))
    return ZoneRules()


def normalised_entropy(p: np.ndarray, n_keys: int) -> np.ndarray:
    """Entropy of distributions over the last axis divided by log(n_keys); 0 for one key."""
    if n_keys <= 1:
        return np.zeros(p.shape[:-1], dtype=np.float32)
    q = np.where(p > 0, p, 1.0)
    return (-(p * np.log(q)).sum(axis=-1) / np.log(n_keys)).astype(np.float32)


def layer_groups(n_layers: int, n_groups: int = 8) -> list[np.ndarray]:
    """Contiguous, nearly equal groups of layer indices; a small model repeats layers."""
    layers = np.arange(n_layers)
    if n_layers >= n_groups:
        return [layers[(layers * n_groups) // n_layers == g] for g in range(n_groups)]
    return [np.array([g * n_layers // n_groups]) for g in range(n_groups)]


def fingerprint(rows: np.ndarray, *, exclude_first: bool = False) -> np.ndarray:
    """One query's attention rows (L, H, K) over its K visible keys -> (20,) float32."""
    L, _, K = rows.shape
    rows = np.asarray(rows, dtype=np.float32)
    mean = rows.mean(axis=(0, 1))  # (K,)
    if exclude_first:
        rows, mean = hide_sink(rows), hide_sink(mean)
    n_keys = K - 1 if exclude_first else K
    # Entropy per head, then averaged: the mean row of 270 heads is blurry by construction.
    per_layer = normalised_entropy(rows, n_keys).mean(axis=1)  # (L,)
    return from_summary(mean, per_layer)


def from_summary(mean: np.ndarray, per_layer_entropy: np.ndarray) -> np.ndarray:
    """The 20 numbers from a query's two summaries: its mean row over all layers and heads
    (K,) and each layer's mean normalised head entropy (L,). The whole-text pass of the
    atlas (`lib.atlas.ingest`) records only these, never layers x heads x T^2 numbers."""
    K, L = mean.shape[0], per_layer_entropy.shape[0]
    distance = K - 1 - np.arange(K)
    bands = [
        mean[distance < LOCAL].sum(),
        mean[(distance >= LOCAL) & (distance < MID)].sum(),
        mean[distance >= MID].sum(),
    ]
    hist = np.bincount((np.arange(K) * 8) // K, weights=mean, minlength=8)
    layer_ent = [per_layer_entropy[g].mean() for g in layer_groups(L)]
    return np.array([*bands, per_layer_entropy.mean(), *hist, *layer_ent], dtype=np.float32)


def histogram_peaks(hist: np.ndarray, peak_mass: float = 0.15) -> list[int]:
    """Bins holding >= peak_mass that exceed both neighbours (edges: their one neighbour)."""
    padded = np.concatenate([[-1.0], hist, [-1.0]])
    return [
        i
        for i in range(len(hist))
        if hist[i] >= peak_mass and hist[i] > padded[i] and hist[i] > padded[i + 2]
    ]


def zone(fp: np.ndarray, rules: ZoneRules | None = None) -> Zone:
    """The zone of one fingerprint, by the rules in this module's docstring."""
    r = rules or default_rules()
    local, mid, long, entropy = (float(x) for x in fp[:4])
    if local >= r.syntax_local and entropy <= r.syntax_entropy:
        return "syntax_floor"
    if long >= r.long_mass:
        return "long_range"
    if mid >= r.mid_mass:
        return "semantic_bridge"
    # Inner bins only: nearly every token has a "peak" at the start (the sink) and at the
    # latest tokens; a ripple is a beat between them.
    peaks = [i for i in histogram_peaks(fp[4:12], r.peak_mass) if 1 <= i <= 6]
    if any(b - a >= 2 for a, b in zip(peaks, peaks[1:], strict=False)):
        return "structure_ripple"
    return "diffuse"


@dataclass(frozen=True, eq=False)
class Fingerprints:
    """The fingerprint and zone of each of a run's S generated tokens.

    vectors  (S, 20) float32  one row per generated token, columns as in DIMENSIONS
    zones    S zone names
    """

    vectors: np.ndarray
    zones: tuple[Zone, ...]
    exclude_first: bool

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.vectors.shape[1] != len(DIMENSIONS):
            raise ValueError(f"vectors must be (S, {len(DIMENSIONS)})")
        if len(self.zones) != self.vectors.shape[0]:
            raise ValueError("one zone per vector")


def run_fingerprints(result: GenerationResult, *, exclude_first: bool = False) -> Fingerprints:
    """Fingerprints of every generated token from the run's captured query rows."""
    vectors = []
    for s in range(result.n_steps):
        K = result.query_position(s) + 1  # keys 0 .. query position
        vectors.append(fingerprint(result.attention[s, :, :, :K], exclude_first=exclude_first))
    v = np.stack(vectors)
    return Fingerprints(v, tuple(zone(x) for x in v), exclude_first)
