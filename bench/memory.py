"""Item 2: memory of one long run, measured in a process that does nothing else.

`python -m bench.memory N NEW` loads the bundled model, generates NEW tokens after an
N-token prompt, and prints one JSON line: the stored result's size, the naive full capture
(layers x heads x T^2 float32) it replaces, and the process's peak RSS before and after.
`python -m bench.memory N NEW seed` does the same run the seed's way (eager attention,
`generate(output_attentions=True)`), for the baseline peak RSS.
"""

from __future__ import annotations

import json
import sys

from bench.common import child_env, peak_rss_bytes, run_child, set_threads_from_env

STORED_TARGET = 1 / 20
RSS_TARGET = 1.5e9


def child(n_tokens: int, new_tokens: int, seed_way: bool = False) -> dict:
    set_threads_from_env()
    from bench.texts import prompt_text
    from lib.model.generation import encode_prompt, generate
    from lib.model.loading import load_model

    lm = load_model()
    text = prompt_text(lm.tokenizer, n_tokens)
    rss_loaded = peak_rss_bytes()
    if seed_way:
        from bench.capture import hf_generate

        ids, _ = encode_prompt(lm, text)
        tokens = hf_generate(lm, ids, new_tokens, seed_way=True)
        return {"new_tokens": len(tokens) - len(ids), "peak_rss_bytes": peak_rss_bytes()}
    result = generate(lm, text, new_tokens)
    T = result.token_ids.shape[0]
    return {
        "prompt_tokens": result.prompt_len,
        "new_tokens": result.n_steps,
        "stored_bytes": result.nbytes(),
        "naive_bytes": result.n_layers * result.n_heads * T * T * 4,
        "peak_rss_after_load_bytes": rss_loaded,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def run(n_tokens: int, new_tokens: int, threads: int, seed_rss: bool, log) -> dict:
    log(f"memory: {n_tokens}-token prompt + {new_tokens} new tokens in a fresh process")
    args = [str(n_tokens), str(new_tokens)]
    m = run_child("bench.memory", args, child_env(threads))
    if seed_rss:
        log("memory: the same run the seed's way (eager, output_attentions) in a fresh process")
        seed = run_child("bench.memory", [*args, "seed"], child_env(threads))
        m["seed_peak_rss_bytes"] = seed["peak_rss_bytes"]
    fraction = m["stored_bytes"] / m["naive_bytes"]
    return m | {
        "target": "stored <= 1/20 of naive; peak RSS < 1.5 GB",
        "stored_fraction": fraction,
        "ok": fraction <= STORED_TARGET and m["peak_rss_bytes"] < RSS_TARGET,
    }


if __name__ == "__main__":
    seed = len(sys.argv) > 3 and sys.argv[3] == "seed"
    print(json.dumps(child(int(sys.argv[1]), int(sys.argv[2]), seed)))
