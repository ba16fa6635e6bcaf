"""The generation service on Ray Serve: N replicas behind one address, each with its own
copy of the model and its own scheduler, batching its share of the requests.

    uv sync --extra distributed
    uv run python -m lib.serve --replicas 2 --port 8000        # a local Ray cluster
    uv run python -m lib.serve --replicas 8 --ray-address auto # an existing cluster

Every replica runs the same FastAPI app as the single-process service (`lib.serve.api`),
built on the replica (the model is loaded there, not shipped from here). Ray Serve's
proxy spreads the requests over the replicas; a replica takes up to `MAX_ONGOING`
requests at once, so that its scheduler has a class to batch.
"""

from __future__ import annotations

MAX_ONGOING = 96  # requests one replica holds at once: a batch of 32 and a queue of 64


def _builder(model: str | None, top_k: int, sidecar: str | None, threads: int):
    """What a replica runs when it starts: load the model, build the app."""

    def build():
        import torch

        from lib.config import BUNDLED_MODEL
        from lib.model.loading import load_model
        from lib.serve.api import create_app

        torch.set_num_threads(threads)
        return create_app(load_model(model or BUNDLED_MODEL), top_k=top_k, sidecar=sidecar)

    return build


def deploy(
    replicas: int,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    model: str | None = None,
    top_k: int = 32,
    sidecar: str | None = None,
    threads: int = 1,
    address: str | None = None,
) -> None:
    """Start (or join) a Ray cluster and run the deployment on it, at http://host:port/."""
    from lib.cluster import start_ray

    start_ray(address)
    from ray import serve

    serve.start(http_options={"host": host, "port": port})
    ingress = serve.ingress(_builder(model, top_k, sidecar, threads))
    deployment = serve.deployment(
        ingress(),
        name="generation",
        num_replicas=replicas,
        max_ongoing_requests=MAX_ONGOING,
        ray_actor_options={"num_cpus": threads},
    )
    serve.run(deployment.bind(), name="tav", route_prefix="/")
