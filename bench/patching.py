"""Item 13: activation patching's sweep of the residual stream on the bundled model, every
layer x every position, batched (32 patched runs per forward pass) against the same
patched passes run one by one, in one run, cases taking turns."""

from __future__ import annotations

import statistics
import time

CLEAN = "When John and Mary went to the store after a long day at school, John gave a drink to"


def run(lm, quick: bool, repeats: int, log) -> dict:
    from lib.analysis.patching import answer_id, patch_sweep

    clean = [int(i) for i in lm.tokenizer(CLEAN)["input_ids"]]
    john, mary = answer_id(lm, " John"), answer_id(lm, " Mary")
    corrupt = list(clean)
    corrupt[max(i for i, t in enumerate(clean) if t == john)] = mary  # the giver swapped
    layers = range(2) if quick else range(lm.parts.n_layers)
    log(f"patching: {len(layers)} layers x {len(clean)} positions, batched and one by one")
    times: dict[str, list[float]] = {"batched": [], "one_by_one": []}
    sweeps = {}
    for r in range(repeats):
        for case in ("batched", "one_by_one") if r % 2 == 0 else ("one_by_one", "batched"):
            start = time.perf_counter()
            sweeps[case] = patch_sweep(
                lm,
                clean,
                corrupt,
                mary,
                john,
                "resid_pre",
                batch=32 if case == "batched" else 1,
                layers=layers,
            )
            times[case].append(time.perf_counter() - start)  # fmt: skip
    same = float(abs(sweeps["batched"].recovered - sweeps["one_by_one"].recovered).max())
    batched, single = (statistics.median(times[k]) for k in ("batched", "one_by_one"))
    return {
        "layers": len(layers), "positions": len(clean), "patched_runs": len(layers) * len(clean),
        "batched_s": batched, "one_by_one_s": single, "ratio": batched / single,
        "max_difference": same, "target": "<= 0.5", "ok": batched / single <= 0.5,
    }  # fmt: skip
