"""Static PNG figures for slides (matplotlib, no browser): the tiny model's attention heatmaps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def attention_png(heads: np.ndarray, words: Sequence[str], title: str, path: Path) -> Path:
    """Every head of one layer (H, T, T) and their average, one heatmap each, to `path`.

    Rows are queries, columns keys; future keys (masked) are hatched grey.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    panels = [*heads, heads.mean(axis=0)]
    names = [f"head {i}" for i in range(len(heads))] + ["average"]
    T = len(words)
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels) + 1, 3.2), squeeze=False)
    future = np.triu(np.ones((T, T), dtype=bool), 1)
    for i, (ax, weights, name) in enumerate(zip(axes[0], panels, names, strict=True)):
        shown = np.ma.masked_array(weights[:T, :T], mask=future)
        ax.set_facecolor("#d9d9d9")
        image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1)
        ax.set_title(name, fontsize=10)
        ax.set_xticks(range(T), words, rotation=60, fontsize=8, ha="right")
        ax.set_yticks(range(T), words if i == 0 else [""] * T, fontsize=8)
    axes[0][0].set_ylabel("query (attending)")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="attention")
    fig.suptitle(title, fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def loss_png(losses: np.ndarray, floor: float | None, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(np.arange(1, len(losses) + 1), losses)
    if floor is not None:
        ax.axhline(floor, ls="--", color="#d62728", label=f"floor {floor:.3f}")
        ax.legend()
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (nats per word)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path
