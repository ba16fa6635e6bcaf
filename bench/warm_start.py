"""Item 4: time to a ready model, each measured in a fresh process.

`python -m bench.warm_start` imports what `load_model` needs (timed apart: Python import),
then calls `load_model()` and prints one JSON line. With the shared converted cache it
reads safetensors; with an empty TAV_CACHE_DIR it de-quantizes the GGUF and converts it,
which is what a first start costs.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.common import child_env, median, run_child

TARGET_S = 3.0
PYCACHE = Path(tempfile.gettempdir()) / "tav-bench-pycache"


def child() -> dict:
    w0, c0 = time.perf_counter(), time.process_time()
    from bench.common import set_threads_from_env

    set_threads_from_env()  # imports torch
    import transformers.modeling_utils  # noqa: F401 - the lazy module load_model pulls in
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # noqa: F401

    from lib.model.loading import load_model

    w1, c1 = time.perf_counter(), time.process_time()
    lm = load_model()
    w2, c2 = time.perf_counter(), time.process_time()
    return {
        "import_s": w1 - w0,
        "import_cpu_s": c1 - c0,
        "load_s": w2 - w1,
        "load_cpu_s": c2 - c1,
        "n_params": lm.n_params,
    }


def run(threads: int, repeats: int, gguf_repeats: int, bytecode: bool, log) -> dict:
    """Cached and GGUF starts take turns; optionally also imports with a bytecode cache."""
    cached_env = child_env(threads)
    cached: list[dict] = []
    gguf: list[dict] = []
    for r in range(max(repeats, gguf_repeats)):
        if r < repeats:
            log(f"warm start: from the converted cache ({r + 1}/{repeats})")
            cached.append(run_child("bench.warm_start", [], cached_env))
        if r < gguf_repeats:
            log(f"warm start: from the GGUF, empty cache ({r + 1}/{gguf_repeats})")
            empty = tempfile.mkdtemp(prefix="tav-bench-cache-")
            try:
                gguf.append(
                    run_child("bench.warm_start", [], child_env(threads, TAV_CACHE_DIR=empty))
                )
            finally:
                shutil.rmtree(empty, ignore_errors=True)
    out: dict = {
        "target": f"load from the converted cache <= {TARGET_S} s",
        "runs": len(cached),
        "load_s": median([c["load_s"] for c in cached]),
        "load_cpu_s": median([c["load_cpu_s"] for c in cached]),
        "import_s": median([c["import_s"] for c in cached]),
        "import_cpu_s": median([c["import_cpu_s"] for c in cached]),
    }
    if gguf:
        out |= {
            "gguf_runs": len(gguf),
            "gguf_load_s": median([g["load_s"] for g in gguf]),
            "gguf_load_cpu_s": median([g["load_cpu_s"] for g in gguf]),
            "ratio_vs_gguf": out["load_s"] / median([g["load_s"] for g in gguf]),
        }
    if bytecode:
        # This machine sets PYTHONDONTWRITEBYTECODE=1, so every import compiles from source.
        # A normal install keeps .pyc files: measure that with a private pycache folder
        # (the first run fills it and is not counted).
        env = child_env(threads, PYTHONPYCACHEPREFIX=str(PYCACHE))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        log("warm start: filling a bytecode cache, then imports with it")
        run_child("bench.warm_start", [], env)
        runs = [run_child("bench.warm_start", [], env) for _ in range(max(1, repeats))]
        out["import_with_bytecode_s"] = median([b["import_s"] for b in runs])
        out["load_with_bytecode_s"] = median([b["load_s"] for b in runs])
    out["ok"] = out["load_s"] <= TARGET_S
    return out


if __name__ == "__main__":
    print(json.dumps(child()))
    sys.stdout.flush()
