"""The map shipped with the app, so that a fresh install opens the atlas on families.

The bundled model and the built-in corpus are fixed, so the map they make is too: `ship`
reads the corpus with the model into a store of its own (nothing of any student's), runs
discovery with its defaults, and writes the run's files to lib/atlas/map/:

    points.parquet, clusters.parquet, scaler.pkl   the discovery run's own files
    runs.parquet     the corpus windows the points came from (run id, document, text), so
                     a clicked point's attention can be read again without a store
    manifest.json    the run's manifest, plus `shipped`: the command, the model and its
                     package version, and a digest of the corpus it read

A map built here (the Atlas page's button, `build`, `discover`) always comes first; the
shipped one is shown only where none was built. Its run ids are its own store's, never the
local store's: its points are looked up in `runs.parquet`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

SHIPPED = Path(__file__).parent / "map"
COMMAND = "uv run python -m lib.atlas ship"
RUN_FILES = ("points.parquet", "clusters.parquet", "scaler.pkl")


def corpus_digest() -> str:
    """sha256 over the built-in corpus's document names and texts."""
    from lib.atlas.ingest import corpus_documents

    h = hashlib.sha256()
    for doc in corpus_documents():
        h.update(f"{doc.name}\0{doc.text}\0".encode())
    return h.hexdigest()


def shipped_map() -> Path | None:
    """The shipped map's folder, or None where it is missing."""
    return SHIPPED if (SHIPPED / "manifest.json").exists() else None


def is_shipped(folder: str | Path) -> bool:
    return Path(folder).resolve() == SHIPPED.resolve()


def current_map(output: str | Path) -> Path | None:
    """The map to show: the newest run discovered in `output`, else the shipped one."""
    from lib.atlas.discovery import latest_run

    return latest_run(output) or shipped_map()


def shipped_run(folder: str | Path, run_id: int) -> tuple[dict, dict[int, int]]:
    """A shipped point's window as `Store.run` and `Store.token_ids` give a stored one:
    (its row: source, prompt, settings; position -> token id of its mapped tokens)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    folder = Path(folder)
    runs = pq.read_table(folder / "runs.parquet", filters=[("run_id", "=", int(run_id))])
    if runs.num_rows != 1:
        raise KeyError(f"run {run_id} is not in the shipped map")
    row = runs.to_pylist()[0]
    points = pq.read_table(folder / "points.parquet", columns=["run_id", "position", "token_id"])
    mine = points.filter(pc.equal(points["run_id"], int(run_id)))
    stored = dict(zip(mine["position"].to_pylist(), mine["token_id"].to_pylist(), strict=True))
    settings = {"document": row["document"], "window": row["window"]}
    return {"source": "corpus", "prompt": row["text"], "settings": settings}, stored


def ship(lm, folder: Path = SHIPPED, report: Callable[[float, str], None] | None = None) -> dict:
    """Build the map from the built-in corpus alone, read by `lm` (the bundled model), in a
    fresh store with discovery's defaults, and write it to `folder`; returns its manifest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lib.atlas.build import build_map
    from lib.atlas.store import Store

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Made beside its place, then swapped in: never half old, half new.
    new = Path(tempfile.mkdtemp(prefix=f".{folder.name}-new-", dir=folder.parent))
    new.chmod(0o755)  # mkdtemp's folder is its owner's alone; the app's files are for all
    try:
        with tempfile.TemporaryDirectory(prefix="tav-ship-") as tmp:
            store = Store(Path(tmp) / "corpus.sqlite")
            manifest = build_map(store, lm, str(Path(tmp) / "discovery"), report)
            run = Path(tmp) / "discovery" / manifest["run_id"]
            points = pq.read_table(run / "points.parquet", columns=["run_id"])
            runs = []
            for run_id in sorted(set(points["run_id"].to_pylist())):
                r = store.run(run_id)
                runs.append(
                    {
                        "run_id": run_id,
                        "document": r["settings"]["document"],
                        "window": r["settings"]["window"],
                        "text": r["prompt"],
                    }
                )
            for name in RUN_FILES:
                shutil.copyfile(run / name, new / name)
        pq.write_table(pa.Table.from_pylist(runs), new / "runs.parquet")
        _write_manifest(new, manifest, lm.spec, len(runs))
        _swap(new, folder)
    finally:
        shutil.rmtree(new, ignore_errors=True)
    return manifest


def _write_manifest(folder: Path, manifest: dict, model: str, windows: int) -> None:
    from lib.model.loading import BUNDLED_PACKAGE

    # Where it was made means nothing elsewhere; how it was made is what the manifest keeps.
    manifest["db"] = None
    manifest["config"] |= {"db": None, "output": None}
    manifest["shipped"] = {
        "command": COMMAND,
        "model": model,
        "model_package": f"{BUNDLED_PACKAGE} {importlib.metadata.version(BUNDLED_PACKAGE)}",
        "corpus_sha256": corpus_digest(),
        "windows": windows,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _swap(new: Path, folder: Path) -> None:
    """`new` takes `folder`'s place (two renames; the old one is removed after)."""
    old = folder.with_name(f".{folder.name}-old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    new.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
