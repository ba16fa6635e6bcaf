"""Item 9: a class pressing Generate at the same moment, in a process that does nothing else.

`python -m bench.classroom N NEW [PROMPT_TOKENS]` loads the bundled model and serves N
students through the app's own path (`Scheduler.submit`, then waiting on the ticket as a
session thread does), each with its own prompt (no two alike, so no request is shared),
NEW tokens each. Measured in the same process, in turns:
- one student alone (median of 3),
- the N students served one after another (one run at a time, the old way without
  thrashing): each one's time from the common click to their run done,
- the N students at once, batched: time to done and time to their first token.
Prints one JSON line, with the process's peak RSS.
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time

from bench.common import child_env, peak_rss_bytes, run_child, set_threads_from_env

P95_TARGET = 3.0  # p95 of the class within 3x one student alone
FIRST_TOKEN_TARGET_S = 1.0


def percentile(xs: list[float], q: float) -> float:
    import numpy as np

    return float(np.quantile(xs, q))  # linear between the two nearest, as the README's figures


def class_prompts(n: int, prompt_tokens: int, tokenizer) -> list[str]:
    from bench.texts import prompt_text

    base = prompt_text(tokenizer, prompt_tokens) if prompt_tokens else ""
    return [
        f"Student {i} writes: {base} The old wizard walked through the forest" for i in range(n)
    ]


def serve(scheduler, prepared: list, tag: str) -> tuple[list[float], list[float]]:
    """Every student submits at the same moment (a barrier); each waits on their ticket.
    Returns (seconds to done, seconds to first token) per student."""
    n = len(prepared)
    done, first = [0.0] * n, [0.0] * n
    click = threading.Barrier(n + 1)
    t0 = [0.0]

    def student(i: int) -> None:
        click.wait()
        ticket = scheduler.submit(f"{tag}-{i}", prepared[i])
        version = -1
        while not ticket.over:
            version = ticket.wait(version, 60)
            if not first[i] and ticket.written:
                first[i] = time.perf_counter() - t0[0]
        assert ticket.status == "done", ticket.error
        done[i] = time.perf_counter() - t0[0]

    threads = [threading.Thread(target=student, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    t0[0] = time.perf_counter()
    click.wait()
    for t in threads:
        t.join()
    return done, first


def child(n: int, new_tokens: int, prompt_tokens: int) -> dict:
    set_threads_from_env()
    from lib.config import Limits
    from lib.model.batching import prepare
    from lib.model.loading import load_model
    from lib.model.result import RunSettings
    from lib.model.result_store import ResultStore
    from lib.model.scheduler import Scheduler, SchedulerLimits

    lm = load_model()
    inflight = Limits.from_env().max_inflight_mb * 2**20  # the server's setting, as the app
    prompts = class_prompts(n, prompt_tokens, lm.tokenizer)
    prepared = [prepare(lm, p, RunSettings(new_tokens)) for p in prompts]
    store = ResultStore(2**31)
    batched = Scheduler(lm, store, SchedulerLimits(n, n, inflight))
    one_at_a_time = Scheduler(lm, store, SchedulerLimits(1, n, inflight))
    serve(batched, prepared[:1], "warm")  # first-call costs out of every figure
    solo = [serve(batched, prepared[i : i + 1], f"solo{i}")[0][0] for i in range(3)]
    serial, _ = serve(one_at_a_time, prepared, "serial")
    passes = batched.forward_passes
    together, first = serve(batched, prepared, "class")
    for scheduler in (batched, one_at_a_time):  # the process exits next: workers end first
        scheduler.close()
    solo_s = statistics.median(solo)
    return {
        "students": n,
        "new_tokens": new_tokens,
        "prompt_tokens": [min(len(p.ids) for p in prepared), max(len(p.ids) for p in prepared)],
        "solo_s": solo_s,
        "serial_p50_s": percentile(serial, 0.5),
        "serial_p95_s": percentile(serial, 0.95),
        "batched_p50_s": percentile(together, 0.5),
        "batched_p95_s": percentile(together, 0.95),
        "batched_first_token_max_s": max(first),
        "batched_first_token_p50_s": percentile(first, 0.5),
        "batched_forward_passes": batched.forward_passes - passes,
        "p95_vs_solo": percentile(together, 0.95) / solo_s,
        "max_inflight_mb": inflight // 2**20,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def run(n: int, new_tokens: int, prompt_tokens: int, threads: int, log) -> dict:
    log(f"classroom: {n} students x {new_tokens} tokens, alone / one after another / batched")
    c = run_child(
        "bench.classroom",
        [str(n), str(new_tokens), str(prompt_tokens)],
        child_env(threads),
        timeout=1800,
    )
    return c | {
        "target": f"p95 <= {P95_TARGET}x one student alone; first token <= 1 s",
        "ok": c["p95_vs_solo"] <= P95_TARGET
        and c["batched_first_token_max_s"] <= FIRST_TOKEN_TARGET_S,
    }


if __name__ == "__main__":
    prompt_tokens = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    print(json.dumps(child(int(sys.argv[1]), int(sys.argv[2]), prompt_tokens)))
