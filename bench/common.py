"""Shared benchmark helpers: interleaved timing, child processes, the machine's description."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def interleaved(
    cases: dict[str, Callable[[], object]], repeats: int, warmup: bool = True
) -> dict[str, dict[str, list[float]]]:
    """Wall and CPU seconds per call of each case: {"wall": {case: [...]}, "cpu": {...}}.

    The cases take turns (order reversed every other round), so the noise of the shared
    machine falls on every case alike. CPU time (all threads of this process) is the steadier
    figure here: other jobs on the same 2 cores stretch wall time but barely touch it.
    """
    if warmup:
        for fn in cases.values():
            fn()
    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            w0, c0 = time.perf_counter(), time.process_time()
            cases[name]()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0)
    return {"wall": wall, "cpu": cpu}


def child_env(threads: int, **extra: str) -> dict[str, str]:
    """Environment for a measuring child process: same threads, no hub, extra overrides."""
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS=str(threads),
        TAV_BENCH_THREADS=str(threads),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    env.update(extra)
    return env


def run_child(module: str, args: list[str], env: dict[str, str], timeout: float = 900) -> dict:
    """Run `python -m module args` in a fresh process; it prints one JSON object last."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{module} {args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def set_threads_from_env() -> int:
    """In a child: use the thread count the parent chose (TAV_BENCH_THREADS)."""
    import torch

    threads = int(os.environ.get("TAV_BENCH_THREADS", torch.get_num_threads()))
    torch.set_num_threads(threads)
    return threads


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (VmHWM).

    Not getrusage's ru_maxrss: on Linux that carries over the parent's size through
    fork + exec, so a child of a big benchmark process would report the parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource  # not Linux: no /proc; ru_maxrss is in bytes on macOS

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def machine() -> dict:
    """What the numbers were measured on."""
    import plotly
    import streamlit
    import torch
    import transformers

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 1024**2, 1)
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem,
        "gpu": torch.cuda.is_available(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "streamlit": streamlit.__version__,
        "plotly": plotly.__version__,
        "torch_threads": torch.get_num_threads(),
        "pythondontwritebytecode": bool(os.environ.get("PYTHONDONTWRITEBYTECODE")),
        "load_average_1min_at_start": round(os.getloadavg()[0], 2),
    }
