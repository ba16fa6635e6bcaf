"""Batched generation and the scheduler, on the real bundled model.

A run decoded beside others must be exactly the run decoded alone (tokens, attention rows
to 1e-5, and an independent eager forward pass); identical requests in flight are written
once; a full queue refuses with a message; a stopped run leaves the batch.
"""

import platform
import threading
import time

import numpy as np
import pytest

from lib.model.batching import Batch, Decoding, inflight_bytes, prefill_groups, prepare
from lib.model.generation import generate
from lib.model.result import RunSettings, SamplingSettings
from lib.model.result_store import ResultStore
from lib.model.scheduler import QueueFull, Scheduler, SchedulerLimits
from tests.test_real_model import assert_matches_eager

WIZARD = "The old wizard walked through the forest"
REQUESTS = [
    (WIZARD, RunSettings(12)),
    ("Hi", RunSettings(8, sampling=SamplingSettings(True, 0.9, 40, 0.95, 0.0, 7))),
    ("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18", RunSettings(15)),
    ("Paris is the capital of", RunSettings(5, forced_tokens=(1234, 42))),
    ("Once upon a time", RunSettings(10, chat_template=True)),
]


def wait_over(ticket, timeout=120.0):
    version = -1
    while not ticket.over:
        new = ticket.wait(version, timeout)
        assert new != version or ticket.over, "no progress within the timeout"
        version = new


def test_prefill_groups_stay_within_the_budget():
    lengths = [5, 300, 40, 2000, 7, 300]
    groups = prefill_groups(lengths, budget=1000)
    assert sorted(i for g in groups for i in g) == list(range(6))
    for g in groups:
        assert len(g) == 1 or len(g) * max(lengths[i] for i in g) <= 1000
    assert [3] in groups  # longer than the budget: alone


def test_batched_runs_equal_runs_alone_with_joins_between_steps(smollm2, smollm2_eager):
    alone = [
        generate(smollm2, p, s.max_new_tokens, s.sampling, s.chat_template, s.forced_tokens)
        for p, s in REQUESTS
    ]
    seqs = [Decoding(smollm2, prepare(smollm2, p, s)) for p, s in REQUESTS]
    batch = Batch(smollm2)
    batch.add(seqs[:2])
    batch.step()
    batch.step()
    batch.add(seqs[2:4])  # join a batch already two steps in, with longer prompts
    batch.step()
    batch.add(seqs[4:])
    while len(batch):
        batch.step()
    for solo, seq in zip(alone, seqs, strict=True):
        r = seq.result(smollm2)
        assert r.token_ids.tolist() == solo.token_ids.tolist()
        assert r.attention.shape == solo.attention.shape
        assert np.abs(r.attention - solo.attention).max() <= 1e-5
        assert np.abs(r.top_probs - solo.top_probs).max() <= 1e-5
        assert r.top_ids[:, 0].tolist() == solo.top_ids[:, 0].tolist()
        assert np.abs(r.chosen_prob - solo.chosen_prob).max() <= 1e-5
    # and against an independent eager pass over the final text (padding never leaks in)
    for seq in seqs[1:4]:
        assert_matches_eager(seq.result(smollm2), smollm2_eager)
    # passes: 3 prefills + one per step while anything was left, far fewer than alone
    assert batch.forward_passes < sum(r.n_steps for r in alone)


def test_identical_requests_in_flight_are_written_once(smollm2):
    scheduler = Scheduler(smollm2, ResultStore(2**30))
    prepared = prepare(smollm2, WIZARD, RunSettings(10))
    tickets, start = [], threading.Barrier(8)

    def student():
        start.wait()
        tickets.append(scheduler.submit("same-key", prepared))

    threads = [threading.Thread(target=student) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for ticket in tickets:
        wait_over(ticket)
    results = {id(t.result) for t in tickets}
    assert len(results) == 1 and tickets[0].status == "done"
    assert scheduler.forward_passes == tickets[0].result.n_steps  # one run's passes: 1 + 9
    again = scheduler.submit("same-key", prepared)  # finished: from the store, no pass
    assert again.status == "done" and again.result is tickets[0].result
    assert scheduler.forward_passes == 10


def test_concurrent_sessions_get_their_own_runs(smollm2):
    scheduler = Scheduler(smollm2, ResultStore(2**30))
    prompts = [f"Student {i} wrote: the old wizard" for i in range(6)]
    alone = {p: generate(smollm2, p, 8).token_ids.tolist() for p in prompts[:2]}
    tickets = [scheduler.submit(p, prepare(smollm2, p, RunSettings(8))) for p in prompts]
    for ticket in tickets:
        wait_over(ticket)
    for p, ticket in zip(prompts, tickets, strict=True):
        assert ticket.result.prompt == p
        if p in alone:
            assert ticket.result.token_ids.tolist() == alone[p]
    assert max(t.batch_size for t in tickets) > 1  # they were written together
    assert scheduler.forward_passes < 6 * 8


def test_a_full_queue_refuses_with_a_message(smollm2):
    scheduler = Scheduler(smollm2, ResultStore(2**30), SchedulerLimits(max_runs=1, max_queue=1))
    taken, refused = [], []
    for i in range(3):  # one written, at most one waiting: the third cannot get in
        try:
            taken.append(scheduler.submit(f"k{i}", prepare(smollm2, f"Run {i}", RunSettings(30))))
        except QueueFull as err:
            refused.append(str(err))
    assert refused and "busy" in refused[0] and "again" in refused[0]
    for ticket in taken:
        scheduler.release(ticket)
    with pytest.raises(QueueFull):
        Scheduler(smollm2, ResultStore(2**30), SchedulerLimits(max_queue=0)).submit(
            "x", prepare(smollm2, "x", RunSettings(1))
        )


def test_a_run_that_cannot_start_fails_alone(smollm2, monkeypatch):
    """A request that breaks at admission gets its message; the runs around it still
    finish and the worker goes on serving later ones (it used to die and strand them)."""
    import lib.model.scheduler as sched

    real = sched.Decoding

    def breaks_on_poison(lm, prepared):
        if prepared.prompt == "poison":
            raise RuntimeError("cannot lay out this run")
        return real(lm, prepared)

    monkeypatch.setattr(sched, "Decoding", breaks_on_poison)
    scheduler = Scheduler(smollm2, ResultStore(2**30))
    names = ["before", "poison", "after"]
    tickets = [scheduler.submit(n, prepare(smollm2, n, RunSettings(4))) for n in names]
    for ticket in tickets:
        wait_over(ticket)
    assert [t.status for t in tickets] == ["done", "failed", "done"]
    assert "cannot lay out this run" in tickets[1].error
    later = scheduler.submit("later", prepare(smollm2, "later", RunSettings(3)))
    wait_over(later)
    assert later.status == "done" and later.result.prompt == "later"


def test_a_run_stopped_as_it_is_admitted_is_never_read(smollm2, monkeypatch):
    """A session lets go of its run after the worker admitted it, before the prompt is read
    (the worker has let go of the lock): the run is dropped, and the runs beside it finish.
    It used to be read anyway, and one that ended at its first token broke the batch."""
    scheduler = Scheduler(smollm2, ResultStore(2**30))
    real = scheduler._advance

    def advance_after_a_release(admitted):
        for ticket in admitted:
            if ticket.key == "stopped":
                scheduler.release(ticket)
        real(admitted)

    monkeypatch.setattr(scheduler, "_advance", advance_after_a_release)
    runs = {"stopped": RunSettings(1), "beside": RunSettings(4)}
    tickets = {
        k: scheduler.submit(k, prepare(smollm2, f"{WIZARD} {k}", s)) for k, s in runs.items()
    }
    for ticket in tickets.values():
        wait_over(ticket)
    assert tickets["beside"].status == "done", tickets["beside"].error
    assert tickets["stopped"].status == "cancelled" and "stopped" not in scheduler.store
    assert scheduler.forward_passes == tickets["beside"].result.n_steps  # one run's passes
    assert scheduler.load() == (0, 0)


def test_a_stopped_run_leaves_the_batch(smollm2):
    scheduler = Scheduler(smollm2, ResultStore(2**30))
    ticket = scheduler.submit("long", prepare(smollm2, WIZARD, RunSettings(50)))
    version = -1
    while ticket.written < 2:
        version = ticket.wait(version, 60)
    scheduler.release(ticket)
    assert ticket.status == "cancelled" and ticket.over
    deadline = time.monotonic() + 60
    while scheduler.load() != (0, 0):  # the worker drops it at the next step
        assert time.monotonic() < deadline
        time.sleep(0.02)
    passes = scheduler.forward_passes
    assert passes < 50
    assert "long" not in scheduler.store


def test_kv_bytes_per_token_is_what_the_cache_holds(smollm2):
    """Counted from the tensors a real forward pass leaves in its cache, not from the config."""
    import torch

    ids = smollm2.batch(smollm2.tokenizer(WIZARD).input_ids)  # on the model's device
    with torch.no_grad():
        cache = smollm2.model(ids, use_cache=True).past_key_values
    held = sum(t.nbytes for layer in cache.layers for t in (layer.keys, layer.values))
    assert held == ids.shape[1] * smollm2.kv_bytes_per_token


def test_runs_that_would_overrun_the_memory_limit_wait_their_turn(smollm2):
    """With room for one run's cache and rows but not two, the second waits until the
    first is done (no pass writes both); with the default limit they share passes."""
    a, b = (prepare(smollm2, f"{WIZARD} {i}", RunSettings(6)) for i in range(2))
    one, two = inflight_bytes(smollm2, [a]), inflight_bytes(smollm2, [a, b])
    assert one < two and two >= 2 * one  # left padding: both as long as the longer
    for limit, serial in (
        (one + (two - one) // 2, True),
        (SchedulerLimits().max_inflight_bytes, False),
    ):
        scheduler = Scheduler(
            smollm2, ResultStore(2**30), SchedulerLimits(max_inflight_bytes=limit)
        )
        tickets = [scheduler.submit(str(i), p) for i, p in enumerate((a, b))]
        for ticket in tickets:
            wait_over(ticket)
        assert [t.status for t in tickets] == ["done", "done"]
        steps = sum(t.result.n_steps for t in tickets)
        assert (scheduler.forward_passes == steps) is serial, (limit, scheduler.forward_passes)


FRAGMENT = """
import sys, torch
from lib.model.loading import return_freed_memory
if sys.argv[1] == "on":
    assert return_freed_memory()
import os
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
big = torch.ones(2 * 2**20); del big  # freed: glibc raises its mmap threshold to 8 MB
before = rss()
blocks = [torch.ones(2**20) for _ in range(100)]  # 400 MB of 4 MB blocks, as a cache grows
keep = blocks[-1]  # the newest stays, as the newest cache does
del blocks
print((rss() - before) / 2**20)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_freed_memory_goes_back_to_the_system_on_glibc(processes):
    """The pattern of a growing key/value cache, in a fresh process each way: with glibc's
    default the freed 4 MB blocks stay in the heap under the newest one; switched, they go."""
    held = {}
    for switch in ("on", "off"):
        out = processes.run("-c", FRAGMENT, switch, check=True)
        held[switch] = float(out.stdout)
    assert held["off"] > 300 and held["on"] < 50, held


def test_result_store_is_bounded_by_bytes(smollm2):
    runs = [generate(smollm2, f"Text number {i}", 4) for i in range(4)]
    size = runs[0].nbytes()
    store = ResultStore(int(size * 2.5))
    for i, r in enumerate(runs):
        store.put(str(i), r)
    assert store.nbytes <= size * 2.5 and len(store) == 2
    assert "0" not in store and store.get("3") is runs[3]
    big = ResultStore(1)  # a run larger than the budget is still kept until the next
    big.put("a", runs[0])
    assert big.get("a") is runs[0]


def test_close_lets_the_worker_finish_and_end():
    """A process about to exit closes its scheduler: the worker writes what it holds, ends,
    and is joined (one still inside torch at interpreter exit aborted the benchmark's
    classroom child). A later submit starts a new worker."""
    from tests.tiny import WORDS, tiny_lm

    lm = tiny_lm()
    scheduler = Scheduler(lm, ResultStore(2**30))
    prompt = " ".join(WORDS[:4])
    first = scheduler.submit("a", prepare(lm, prompt, RunSettings(3)))
    writing = scheduler.submit("b", prepare(lm, prompt + " cat", RunSettings(8)))
    wait_over(first)
    worker = scheduler._thread
    assert worker is not None and worker.is_alive()  # idle now, or still writing "b"
    scheduler.close()
    assert not worker.is_alive() and scheduler._thread is None
    assert writing.status == "done"  # what the worker held was written, not dropped
    later = scheduler.submit("c", prepare(lm, prompt + " mat", RunSettings(2)))
    wait_over(later)
    assert later.status == "done"
