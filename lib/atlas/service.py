"""The classify service: a sidecar as a FastAPI app.

    GET  /health             alive, schema version, whether a discovery run is loaded
    POST /fingerprint        store one fingerprint {request_id, vector[20], step, model};
                             with --online also classify it: the answer's `manifold`
    POST /classify           {vector[20]} -> {manifold: {zone, confidence, cluster_id,
                             cluster_label, cluster_description}, schema_version,
                             run_id}
    GET  /discovery/status   the latest discovery run's manifest (where none was run in
                             its folder: the map shipped with the app, whose manifest
                             says so under `shipped`)
    GET  /stats              counts in the store

Bodies are validated by pydantic: a vector of the wrong length, a NaN or infinity, a
missing field or a body over `MAX_BODY_BYTES` get a 4xx with a message, never a 500.
Start it with `uv run python -m lib.atlas serve` (see `--help`).
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lib.analysis.fingerprint import DIMENSIONS, zone
from lib.atlas.classify import Atlas
from lib.atlas.shipped import current_map
from lib.atlas.store import SCHEMA_VERSION, Store, TokenRow
from lib.serve.http import guard

MAX_BODY_BYTES = 64 * 1024
N = len(DIMENSIONS)
Finite = Annotated[float, Field(allow_inf_nan=False)]


class FingerprintIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=200)
    vector: list[Finite] = Field(min_length=N, max_length=N)
    step: int = Field(ge=0, le=1_000_000)
    model: str = Field(default="external", max_length=200)


class ClassifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vector: list[Finite] = Field(min_length=N, max_length=N)


class _Atlases:
    """The latest discovery run (else the map shipped with the app), reloaded when
    `latest` points somewhere new."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._atlas: Atlas | None = None

    def get(self) -> Atlas | None:
        """The latest run, or None; a run that cannot be read is a 503 with the reason."""
        if self.folder is None:
            return None
        run = current_map(self.folder)
        with self._lock:
            if run is None:
                self._atlas = None
            elif self._atlas is None or self._atlas.folder.resolve() != run.resolve():
                try:
                    self._atlas = Atlas(run)
                except Exception as err:  # noqa: BLE001 - a damaged run: say so, stay up
                    self._atlas = None
                    raise HTTPException(
                        503, f"The discovery run {run.name} cannot be read: {err}"
                    ) from err
            return self._atlas


def create_app(
    db: str | Path | None = None, discovery_dir: str | Path | None = None, online: bool = False
) -> FastAPI:
    """The sidecar on the store `db` and the maps in `discovery_dir`. `online`: every
    fingerprint posted is also classified at once, and the answer carries its `manifold`
    (null while there is no map)."""
    store = Store(db)
    atlases = _Atlases(Path(discovery_dir) if discovery_dir else None)
    app = FastAPI(title="Attention atlas", version=str(SCHEMA_VERSION))

    guard(app, MAX_BODY_BYTES, _reply)

    async def store_down(request: Request, err: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"The fingerprint store failed: {err}"}, status_code=503)

    for kind in store.backend.errors():  # sqlite3's, or psycopg's
        app.add_exception_handler(kind, store_down)

    @app.get("/health")
    def health() -> dict:
        try:
            ready, problem = atlases.get() is not None, None
        except HTTPException as err:
            ready, problem = False, err.detail
        return {"status": "ok", "schema_version": SCHEMA_VERSION, "discovery": ready} | (
            {"discovery_problem": problem} if problem else {}
        )

    @app.post("/fingerprint")
    def add_fingerprint(body: FingerprintIn) -> dict:
        z = zone(_vector(body.vector))
        run_id = store.add_run(
            source="api",
            model=body.model,
            prompt="",
            settings={"request_id": body.request_id},
            tokens=[TokenRow(body.step, body.step, -1, "", "", _vector(body.vector), z)],
            doc_key=f"api:{body.request_id}:{body.step}",  # no NUL: PostgreSQL text has none
        )
        answer = {"stored": run_id is not None, "zone": z, "schema_version": SCHEMA_VERSION}
        if online:  # classified against the current map as it arrives (stored either way)
            try:
                atlas = atlases.get()
            except HTTPException:  # a damaged map: /health and /classify say why
                atlas = None
            v = _vector(body.vector)
            answer["manifold"] = None if atlas is None else atlas.classify(v)["manifold"]
        return answer

    @app.post("/classify")
    def classify(body: ClassifyIn) -> dict:
        atlas = atlases.get()
        if atlas is None:
            raise HTTPException(
                409, "Discovery not available: run `python -m lib.atlas discover` first."
            )
        return atlas.classify(_vector(body.vector))

    @app.get("/discovery/status")
    def discovery_status() -> dict:
        atlas = atlases.get()
        if atlas is None:
            return {"available": False, "schema_version": SCHEMA_VERSION}
        return {"available": True, **atlas.manifest}

    @app.get("/stats")
    def stats() -> dict:
        return store.stats()

    return app


def _reply(status: int, message: str, found: list[dict]) -> JSONResponse:
    """The sidecar's error shape: FastAPI's `detail` (the problems, or the message)."""
    return JSONResponse({"detail": found or message}, status_code=status)


def _vector(values: list[float]):
    import numpy as np

    v = np.asarray(values, dtype=np.float32)
    if not all(math.isfinite(x) for x in v.tolist()):  # finite as float64, not as float32
        raise HTTPException(422, "The vector has a number too large for float32.")
    return v
