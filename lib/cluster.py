"""Joining a Ray cluster (or starting one on this machine), the one way the atlas's
distributed ingestion and the generation service's replicas both do it."""

from __future__ import annotations

import os
from pathlib import Path


def start_ray(address: str | None = None):
    """`ray`, initialised once per process: workers import this project from its folder,
    wherever they start, and run in this environment. Under `uv run`, Ray would start its
    workers with `uv run` in their own folder, a fresh environment without the optional
    extra (no Ray in it); the switch is read when Ray is first imported."""
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    import ray

    if not ray.is_initialized():
        root = str(Path(__file__).resolve().parent.parent)
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": root}},
        )
    return ray
