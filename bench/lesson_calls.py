"""Median seconds of each lesson's library call on the bundled model, one torch thread.

`uv run python -m bench.lesson_calls [REPEATS]` prints one JSON line. To compare two
versions of the library in the same run (the machines are noisy), run it alternately with
each checkout first on the path: `PYTHONPATH=/path/to/other/checkout .venv/bin/python -m
bench.lesson_calls`. docs/performance.md gives the figures for the model interface.
"""

from __future__ import annotations

import json
import statistics
import sys
import time


def main(repeats: int = 5) -> dict[str, float]:
    import torch

    from lib.analysis import ablation as ab
    from lib.analysis.head_roles import induction_probe
    from lib.analysis.logit_lens import logit_lens
    from lib.analysis.next_token import sequence_lens, step_distribution
    from lib.analysis.residual import activation_norms, sublayer_lens
    from lib.analysis.weights import layer_ov_spectra
    from lib.model.generation import generate
    from lib.model.loading import load_model

    torch.set_num_threads(1)
    lm = load_model()
    r = generate(lm, "The little robot opened the door", 20)
    upto = r.token_ids[: r.prompt_len + 5]
    calls = {
        "logit_lens": lambda: logit_lens(lm, r),
        "sublayer_lens": lambda: sublayer_lens(lm, r),
        "activation_norms": lambda: activation_norms(lm, r.token_ids),
        "induction_probe": lambda: induction_probe(lm, 50),
        "ablate": lambda: ab.ablate(lm, upto, {(18, 6)}, position=r.prompt_len + 4),
        "ov_spectra": lambda: layer_ov_spectra(lm, 5),
        "step_distribution": lambda: step_distribution(lm, r, 5),
        "sequence_lens": lambda: sequence_lens(lm, r.token_ids),
    }
    out = {}
    for name, call in calls.items():
        call()  # warm
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        out[name] = statistics.median(times)
    return out


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)))
