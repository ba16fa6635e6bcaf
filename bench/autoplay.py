"""Item 10: an autoplay tick, at 5 tokens and at 50.

A tick does what Step by step's autoplay fragment does: it asks the model's scheduler for
the run one token longer (the run so far as forced tokens, plus one chosen token), then
reads the two distributions the page draws (the candidates of the token just written, and
the next token's). Ours continues from the run's kept key/value cache; the baseline is the
same calls with a prefix cache that keeps nothing, which is how every tick worked before
(a pass over the whole run, so a tick grew with the run). Both take turns in one run.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import replace

from bench.common import interleaved, median

PROMPT = "Autoplay writes one token at a time, and the"


def run(lm, lengths: tuple[int, ...], repeats: int, log) -> dict:
    from lib.analysis import next_token as nt
    from lib.model.batching import prepare
    from lib.model.prefixes import PrefixCache
    from lib.model.result import RunSettings, SamplingSettings
    from lib.model.result_store import ResultStore
    from lib.model.scheduler import Scheduler

    log(f"autoplay: ticks at {', '.join(map(str, lengths))} tokens, kept cache vs replay")
    kept_cache = lm.prefixes
    keys = itertools.count()

    def write(scheduler, settings):
        ticket = scheduler.submit(f"bench-{next(keys)}", prepare(lm, PROMPT, settings))
        version = -1
        while not ticket.over:
            version = ticket.wait(version, 600)
        if ticket.status != "done":
            raise RuntimeError(ticket.error)
        return ticket.result

    def tick_case(prefixes, n: int, seeds, timed: list[float], schedulers: list):
        """One tick that adds token `n` to a run of n - 1 written just before (untimed, so
        each tick starts as autoplay's does: right after the previous one)."""
        lm.__dict__["prefixes"] = prefixes  # the scheduler's batch takes the model's cache
        scheduler = Scheduler(lm, ResultStore(0))
        schedulers.append(scheduler)

        def one() -> None:
            lm.__dict__["prefixes"] = prefixes  # and so do the distributions
            sampling = SamplingSettings(True, 1.0, 0, 1.0, 0.0, next(seeds))
            r = write(scheduler, RunSettings(n - 1, sampling=sampling))
            longer = replace(r.settings, max_new_tokens=n, forced_tokens=tuple(r.generated_ids))
            t0 = time.perf_counter()
            new = write(scheduler, longer)
            nt.step_distribution(lm, new, new.n_steps)  # "the next token will be"
            nt.step_distribution(lm, new, new.n_steps - 1)  # the candidates chart
            timed.append(time.perf_counter() - t0)

        return one

    out: dict = {"prompt": PROMPT, "prompt_tokens": len(lm.tokenizer(PROMPT)["input_ids"])}
    seeds = itertools.count(1)
    schedulers: list = []
    try:
        for n in lengths:
            timed: dict[str, list[float]] = {"kept": [], "replay": []}
            cases = {
                "kept": tick_case(PrefixCache(kept_cache.max_bytes), n, seeds, timed["kept"],
                                  schedulers),
                "replay": tick_case(PrefixCache(0), n, seeds, timed["replay"], schedulers),
            }  # fmt: skip
            interleaved(cases, repeats)
            out[str(n)] = {name: median(ts[1:]) for name, ts in timed.items()}  # not the warm-up
            log(f"autoplay: tick at {n} tokens {out[str(n)]}")
    finally:
        lm.__dict__["prefixes"] = kept_cache
        for scheduler in schedulers:
            scheduler.close()
    first, last = str(lengths[0]), str(lengths[-1])
    out["kept_growth"] = out[last]["kept"] / out[first]["kept"]
    out["replay_growth"] = out[last]["replay"] / out[first]["replay"]
    return out
