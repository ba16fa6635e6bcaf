"""A run continued from a kept key/value cache equals the same run written afresh.

"Next token", autoplay and "what if" ask for a run that begins like one already written.
With the model's prefix cache they read only their new tokens; every number must still be
what a fresh run of the same tokens computes (tokens equal, rows and probabilities to 1e-5),
on tiny models of every family whose cache simply grows, and on the bundled model.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from lib.model.batching import Batch, Decoding, prepare
from lib.model.generation import generate
from lib.model.prefixes import PrefixCache
from lib.model.result import GenerationResult, RunSettings, SamplingSettings
from lib.model.result_store import ResultStore
from lib.model.scheduler import Scheduler
from tests.families import FAMILIES, family_lm

PROMPT = "the old wizard walked through the forest"
SAMPLED = SamplingSettings(True, 0.9, 0, 1.0, 0.0, 11)


def write(lm, batch: Batch, prompt: str, settings: RunSettings) -> GenerationResult:
    """One run through `batch`, as the scheduler writes it."""
    seq = Decoding(lm, prepare(lm, prompt, settings))
    batch.add([seq])
    while not seq.done:
        batch.step()
    return seq.result(lm)


def long_run(lm, batch: Batch, prompt: str, n: int) -> GenerationResult:
    """A sampled run of `n` tokens that the end-of-sequence token did not cut short (random
    models write it often): the first seed that gives one."""
    for seed in range(50):
        sampling = SamplingSettings(True, 0.9, 0, 1.0, 0.0, seed)
        run = write(lm, batch, prompt, RunSettings(n, sampling=sampling))
        if run.stop_reason == "max_tokens":
            return run
    raise AssertionError("every seed wrote the end-of-sequence token")


def ids(run: GenerationResult, n: int | None = None) -> tuple[int, ...]:
    return tuple(int(t) for t in run.generated_ids[:n])


def fresh(lm, prompt: str, settings: RunSettings) -> GenerationResult:
    s = settings
    return generate(lm, prompt, s.max_new_tokens, s.sampling, s.chat_template, s.forced_tokens)


def assert_same_run(a: GenerationResult, b: GenerationResult) -> None:
    assert a.token_ids.tolist() == b.token_ids.tolist()
    assert a.attention.shape == b.attention.shape
    assert np.abs(a.attention - b.attention).max() <= 1e-5
    assert a.top_ids[:, 0].tolist() == b.top_ids[:, 0].tolist()
    assert np.abs(a.top_probs - b.top_probs).max() <= 1e-5
    assert np.abs(a.chosen_prob - b.chosen_prob).max() <= 1e-5
    assert np.abs(a.entropy - b.entropy).max() <= 1e-4
    assert a.stop_reason == b.stop_reason


def plain_families() -> list[str]:
    return [f for f in FAMILIES if family_lm(f).plain_cache]


@pytest.mark.parametrize("family", FAMILIES)
def test_next_token_reads_one_token_and_equals_a_fresh_run(family):
    lm = family_lm(family)
    if not lm.plain_cache:
        pytest.skip(f"{family}: a sliding-window cache is never continued")
    batch = Batch(lm, lm.prefixes)
    first = long_run(lm, batch, PROMPT, 6)
    passes = batch.forward_passes
    longer = replace(first.settings, max_new_tokens=7, forced_tokens=ids(first))
    continued = write(lm, batch, PROMPT, longer)
    assert batch.forward_passes - passes == 1  # the last token read, one new token written
    assert continued.n_steps == first.n_steps + 1
    assert_same_run(continued, fresh(lm, PROMPT, longer))


def test_a_what_if_branch_reads_only_what_follows_the_branch_point():
    lm = family_lm("llama")
    batch = Batch(lm, lm.prefixes)
    parent = long_run(lm, batch, PROMPT, 8)
    at = 3
    other = next(t for t in range(lm.vocab_size) if t != int(parent.generated_ids[at]))
    branch = replace(parent.settings, forced_tokens=(*ids(parent, at), other))
    passes = batch.forward_passes
    result = write(lm, batch, PROMPT, branch)
    # one pass per step from the branch point on (fewer if it wrote the end token), none before
    assert batch.forward_passes - passes == result.n_steps - at
    assert int(result.generated_ids[at]) == other
    assert_same_run(result, fresh(lm, PROMPT, branch))


def test_a_shorter_replay_is_served_from_the_kept_run_without_a_pass():
    lm = family_lm("qwen2")
    batch = Batch(lm, lm.prefixes)
    parent = long_run(lm, batch, PROMPT, 7)
    shorter = RunSettings(4, forced_tokens=ids(parent, 4))
    passes = batch.forward_passes
    assert_same_run(write(lm, batch, PROMPT, shorter), fresh(lm, PROMPT, shorter))
    assert batch.forward_passes == passes


def test_another_prompt_or_other_tokens_start_afresh():
    lm = family_lm("llama")
    batch = Batch(lm, lm.prefixes)
    parent = long_run(lm, batch, PROMPT, 5)
    other_first = (int(parent.generated_ids[0]) + 1) % lm.vocab_size
    for prompt, forced in (("a cat sat on the mat", parent.generated_ids), (PROMPT, [other_first])):
        settings = RunSettings(5, forced_tokens=tuple(int(t) for t in forced))
        before = batch.forward_passes
        result = write(lm, batch, prompt, settings)
        assert batch.forward_passes - before == result.n_steps  # every step read afresh
        assert_same_run(result, fresh(lm, prompt, settings))


def test_runs_written_together_keep_their_own_columns():
    """Kept from a batch of three with left padding: each continues as if written alone."""
    lm = family_lm("gpt_neox")
    batch = Batch(lm, lm.prefixes)
    prompts = [PROMPT, "a cat", "the cat sat on the mat a cat"]
    seqs = [Decoding(lm, prepare(lm, p, RunSettings(4 + i))) for i, p in enumerate(prompts)]
    batch.add(seqs)
    while len(batch):
        batch.step()
    for prompt, seq in zip(prompts, seqs, strict=True):
        run = seq.result(lm)
        if run.stop_reason == "eos":
            continue  # nothing follows
        longer = RunSettings(run.n_steps + 2, forced_tokens=ids(run))
        before = batch.forward_passes
        result = write(lm, batch, prompt, longer)
        assert_same_run(result, fresh(lm, prompt, longer))
        assert batch.forward_passes - before == result.n_steps - run.n_steps


@pytest.mark.parametrize("family", ["llama", "gpt2", "phi"])
def test_next_logits_from_a_kept_cache_equal_a_full_pass(family):
    lm = family_lm(family)
    run = write(lm, Batch(lm, lm.prefixes), PROMPT, RunSettings(6))
    hits = lm.prefixes.hits
    for end in (run.prompt_len, run.prompt_len + 3, len(run.token_ids)):
        ids = run.token_ids[:end]
        full = lm.forward(ids, last_only=True).logits[-1]
        assert torch.allclose(lm.next_logits(ids), full, atol=1e-5, rtol=0)
    assert lm.prefixes.hits - hits == 3


def test_the_cache_drops_what_a_newer_run_covers_and_stays_within_its_bytes():
    lm = family_lm("llama")
    run = long_run(lm, Batch(lm), PROMPT, 4)  # four tokens that are not the end token
    batch = Batch(lm, lm.prefixes)
    write(lm, batch, PROMPT, RunSettings(3, forced_tokens=ids(run, 3)))
    write(lm, batch, PROMPT, RunSettings(4, forced_tokens=ids(run)))
    assert len(lm.prefixes) == 1  # the 4-token run holds everything the 3-token one did
    one = lm.prefixes.nbytes
    small = PrefixCache(int(one * 2.5))
    batch = Batch(lm, small)
    prompts = [" ".join(PROMPT.split()[i:] + PROMPT.split()[:i]) for i in range(1, 5)]
    for p in prompts:  # four runs of the same size
        write(lm, batch, p, RunSettings(4, forced_tokens=ids(run)))
    assert len(small) == 2 and small.nbytes <= small.max_bytes
    kept = [small.resume_point(prepare(lm, p, run.settings).ids, ids(run)) for p in prompts]
    assert [k is not None for k in kept] == [False, False, True, True]  # the oldest went first


def test_the_scheduler_continues_runs_for_every_session():
    """Through the app's path: a Next token request costs one pass, and equals a fresh run."""
    lm = family_lm("llama")
    scheduler = Scheduler(lm, ResultStore(2**30))

    def run(key: str, settings: RunSettings) -> GenerationResult:
        ticket = scheduler.submit(key, prepare(lm, PROMPT, settings))
        version = -1
        while not ticket.over:
            version = ticket.wait(version, 30)
        assert ticket.status == "done", ticket.error
        # the progress shows every token, the kept ones too (the Generate page's live text)
        assert len(ticket.pieces) == ticket.result.n_steps
        return ticket.result

    first = next(
        r for seed in range(50)
        if (r := run(f"a{seed}", RunSettings(5, sampling=replace(SAMPLED, seed=seed)))).stop_reason
        == "max_tokens"
    )  # fmt: skip
    passes = scheduler.forward_passes
    longer = replace(first.settings, max_new_tokens=6, forced_tokens=ids(first))
    assert_same_run(run("b", longer), fresh(lm, PROMPT, longer))
    assert scheduler.forward_passes - passes == 1
    other = next(t for t in range(lm.vocab_size) if t != int(first.generated_ids[3]))
    branch = replace(first.settings, max_new_tokens=6, forced_tokens=(*ids(first, 3), other))
    assert_same_run(run("c", branch), fresh(lm, PROMPT, branch))  # 3 steps kept, 3 written
    scheduler.close()


def test_a_cache_that_cannot_be_kept_never_costs_the_run(monkeypatch):
    lm = family_lm("llama")
    cache = PrefixCache(2**30)

    def broken(*args):
        raise RuntimeError("no room")

    monkeypatch.setattr(cache, "keep", broken)
    batch = Batch(lm, cache)
    assert_same_run(write(lm, batch, PROMPT, RunSettings(4)), fresh(lm, PROMPT, RunSettings(4)))
    assert len(batch) == 0 and len(cache) == 0


def test_next_logits_read_several_tokens_after_a_kept_prefix():
    """Tokens that leave a kept run part way: the kept part is read from its cache, the
    rest in one pass, and the logits equal a full pass."""
    for family in ("llama", "gpt2", "gpt_neox"):
        lm = family_lm(family)
        run = long_run(lm, Batch(lm, lm.prefixes), PROMPT, 6)
        n = run.prompt_len + 3
        own = [(int(t) + 1) % lm.vocab_size for t in run.token_ids[n : n + 3]]
        tokens = [*run.token_ids[:n].tolist(), *own]
        hits = lm.prefixes.hits
        full = lm.forward(tokens, last_only=True).logits[-1]
        assert torch.allclose(lm.next_logits(tokens), full, atol=1e-5, rtol=0), family
        assert lm.prefixes.hits == hits + 1


def test_the_bundled_model_continues_exactly(smollm2, smollm2_eager):
    from tests.test_real_model import assert_matches_eager

    lm = smollm2
    prompt = "The old wizard walked through the forest and"
    batch = Batch(lm, lm.prefixes)
    first = write(lm, batch, prompt, RunSettings(12, sampling=SAMPLED))
    assert first.stop_reason == "max_tokens"
    forced = ids(first)
    for settings, passes in ((RunSettings(13, sampling=SAMPLED, forced_tokens=forced), 1),
                             (RunSettings(12, forced_tokens=(*forced[:5], 13)), 7)):  # fmt: skip
        before = batch.forward_passes
        result = write(lm, batch, prompt, settings)
        assert batch.forward_passes - before == passes
        assert_same_run(result, fresh(lm, prompt, settings))
        assert_matches_eager(result, smollm2_eager)
