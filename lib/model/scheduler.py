"""One worker per model that writes every session's runs together, one pass per step.

A class pressing Generate at the same moment would otherwise run 30 generations in 30
threads that thrash two cores. Here sessions `submit` a prepared request and get a
`Ticket`; one worker thread decodes every admitted run in one `Batch` (runs join between
steps and leave when done) and reports progress on the tickets. Each turn of the worker
reads the prompts of at most one prefill group (`PREFILL_TOKENS` padded tokens), then
writes one token for every run admitted, so the first students get tokens while the
class's other prompts are still being read. Identical requests in
flight share one ticket, finished results go to the shared `ResultStore`, and the queue
has a length limit with a message for whoever finds it full.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from lib.labels import display_text
from lib.model.batching import (
    _TOKENIZE,
    Batch,
    Decoding,
    Prepared,
    inflight_bytes,
    one_pass,
)
from lib.model.errors import QueueFull
from lib.model.loading import LoadedModel
from lib.model.result import GenerationResult
from lib.model.result_store import ResultStore

IDLE_EXIT_S = 30.0  # the worker thread ends after this long with nothing to do

log = logging.getLogger("tav")


@dataclass(frozen=True)
class SchedulerLimits:
    """How much the worker takes on: runs written at once (one batch), runs waiting,
    and the memory the runs being written may hold together (bytes: their attention rows
    and key/value cache, `batching.inflight_bytes`)."""

    max_runs: int = 32
    max_queue: int = 64
    max_inflight_bytes: int = 800 * 2**20

    @classmethod
    def from_limits(cls, limits) -> SchedulerLimits:
        """The server's settings (`lib.config.Limits`: TAV_MAX_RUNS and the rest)."""
        return cls(limits.max_runs, limits.max_queue, limits.max_inflight_mb * 2**20)


class Ticket:
    """A session's handle on one run: its place, its progress, then its result.

    `status` is "queued", "running", "done", "cancelled" or "failed" (`error` says why).
    Progress (`written`, `pieces`, `ids`, `batch_size`) changes between steps; `wait` wakes
    on every change, and `rows` gives a written token's attention while the run goes on.
    """

    def __init__(self, key: str, prepared: Prepared | None) -> None:
        self.key = key
        self.prepared = prepared
        self.total = prepared.settings.max_new_tokens if prepared else 0
        self.status = "queued"
        self.result: GenerationResult | None = None
        self.error: str | None = None
        self.pieces: list[str] = []  # the text of each token written so far
        self.ids: list[int] = []  # their vocabulary ids
        self.batch_size = 0  # runs in the pass that wrote the last token
        self.subscribers = 1
        self.version = 0
        self._changed = threading.Condition()
        self._seq: Decoding | None = None

    @classmethod
    def finished(cls, key: str, result: GenerationResult) -> Ticket:
        ticket = cls(key, None)
        ticket.status, ticket.result = "done", result
        ticket.pieces = list(result.generated_labels)
        ticket.ids = result.generated_ids.tolist()
        return ticket

    @property
    def written(self) -> int:
        return len(self.pieces)

    def let_go(self) -> bool:
        """One waiting session no longer wants the run (its scheduler's lock held): whether
        it was the last, so the run is to be cancelled (never for a run already over)."""
        if self.over:
            return False
        self.subscribers -= 1
        return self.subscribers <= 0

    def rows(self, step: int) -> np.ndarray:
        """(L, H, K) the attention of the query that wrote token `step` (one already
        written) over its K keys: the same rows its result will hold."""
        if not 0 <= step < self.written:
            raise IndexError(f"token {step} is not written yet ({self.written} are)")
        seq = self._seq  # read first: it is let go of only once the result is set
        if self.result is not None:
            return self.result.attention[step, :, :, : self.result.prompt_len + step]
        if seq is None:
            raise IndexError("the run ended without a result")
        # a written step's row is final: later steps write other rows
        return seq.attention[step, :, :, : len(seq.prepared.ids) + step]

    @property
    def over(self) -> bool:
        return self.status in ("done", "cancelled", "failed")

    def wait(self, version: int, timeout: float) -> int:
        """Block until the ticket changes from `version` (or it is over, or `timeout`
        seconds pass); returns the version now."""
        with self._changed:
            self._changed.wait_for(lambda: self.version != version or self.over, timeout)
            return self.version

    def _update(self, **changes) -> bool:
        """Set `changes` in their order and wake the waiters. With `unless_over=True`, a
        ticket already over (cancelled meanwhile) is left as it is: returns False."""
        unless_over = changes.pop("unless_over", False)
        with self._changed:
            if unless_over and self.over:
                return False
            for name, value in changes.items():
                setattr(self, name, value)
            self.version += 1
            self._changed.notify_all()
            return True


class Scheduler:
    """The one place a model writes runs for sessions (see the module docstring)."""

    def __init__(
        self, lm: LoadedModel, store: ResultStore, limits: SchedulerLimits | None = None
    ) -> None:
        self.lm = lm
        self.store = store
        self.limits = limits or SchedulerLimits()
        # a model whose cache cannot be padded (sliding windows) writes one run at a time
        self.max_runs = self.limits.max_runs if lm.plain_cache else 1
        self._lock = threading.Condition()
        self._queue: deque[Ticket] = deque()
        self._running: list[Ticket] = []
        self._live: dict[str, Ticket] = {}  # queued or running, by run key
        self._thread: threading.Thread | None = None
        self._closing = False
        self._batch = self._new_batch()

    @property
    def forward_passes(self) -> int:
        """Forward passes the worker has made (identical requests share theirs)."""
        return self._batch.forward_passes

    # ---- what sessions call ---------------------------------------------------------

    def submit(self, key: str, prepared: Prepared) -> Ticket:
        """A ticket for the run `key` names: the stored result, the run already in flight,
        or a new place in the queue. Raises QueueFull when the queue is at its limit."""
        with self._lock:
            if (live := self._live.get(key)) is not None:
                live.subscribers += 1
                return live
            if (result := self.store.get(key)) is not None:
                return Ticket.finished(key, result)
            if len(self._queue) >= self.limits.max_queue:
                raise QueueFull(
                    f"The server is busy: {len(self._queue)} runs are already waiting, the "
                    "most it queues. Nothing was lost: press Generate again in a little while."
                )
            ticket = Ticket(key, prepared)
            self._queue.append(ticket)
            self._live[key] = ticket
            if self._thread is None:
                self._start_worker()
            self._lock.notify_all()
            return ticket

    def ahead(self, ticket: Ticket) -> int:
        """Runs waiting in front of this one (0 once it is being written)."""
        with self._lock:
            try:
                return self._queue.index(ticket)
            except ValueError:
                return 0

    def load(self) -> tuple[int, int]:
        """(runs being written, runs waiting) now."""
        with self._lock:
            return len(self._running), len(self._queue)

    def release(self, ticket: Ticket) -> None:
        """This session no longer wants the run; the last one to let go cancels it."""
        with self._lock:
            if not ticket.let_go():
                return
            self._live.pop(ticket.key, None)
            if ticket in self._queue:
                self._queue.remove(ticket)
            ticket._update(status="cancelled")  # a running one leaves at the next step

    def close(self, timeout: float = 60.0) -> None:
        """Let the worker write what it holds, then end, and wait for it. A process about to
        exit calls this: a worker still inside torch while the interpreter shuts down aborts
        the process ("terminate called without an active exception", seen in the benchmark's
        classroom child). A later submit starts a new worker."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            self._closing = False

    # ---- the worker -----------------------------------------------------------------

    def _work(self) -> None:
        try:
            while True:
                with self._lock:
                    if not self._lock.wait_for(
                        lambda: self._queue or self._running or self._closing,
                        timeout=IDLE_EXIT_S,
                    ):
                        return
                    if self._closing and not (self._queue or self._running):
                        return
                    admitted = self._admit()
                try:
                    self._advance(admitted)
                except Exception as err:  # noqa: BLE001 - every waiting session gets the message
                    log.exception("batched generation failed")
                    self._fail(f"Generation failed: {err}")
        finally:
            # however the worker ends, the next submit starts a new one; tickets never strand
            with self._lock:
                self._thread = None
                if self._queue:
                    self._start_worker()

    def _start_worker(self) -> None:
        """Start the worker thread (under the lock)."""
        self._thread = threading.Thread(target=self._work, name="tav-generation", daemon=True)
        self._thread.start()

    def _admit(self) -> list[Ticket]:
        """Move queued tickets into the batch (under the lock): at most one prefill group,
        within the run and memory limits. A run that cannot even start fails alone; the
        others go on."""
        admitted: list[Ticket] = []
        running = [t.prepared for t in self._running]
        while self._queue and len(self._running) + len(admitted) < self.max_runs:
            ticket = self._queue[0]
            try:
                group = [t.prepared for t in admitted] + [ticket.prepared]
                if not one_pass([len(p.ids) for p in group]):
                    break
                need = inflight_bytes(self.lm, running + group)
                if (running or admitted) and need > self.limits.max_inflight_bytes:
                    break
                seq = Decoding(self.lm, ticket.prepared)
            except Exception as err:  # noqa: BLE001 - this session gets the message
                log.exception("a run could not start")
                self._queue.popleft()
                self._live.pop(ticket.key, None)
                ticket._update(status="failed", error=f"Generation failed: {err}")
                continue
            self._queue.popleft()
            ticket._seq = seq
            ticket._update(status="running")
            admitted.append(ticket)
        self._running += admitted
        return admitted

    def _advance(self, admitted: list[Ticket]) -> None:
        """Drop cancelled runs, read the admitted prompts, then write one token for all."""
        cancelled = [t for t in self._running if t.status == "cancelled"]
        if cancelled:
            self._batch.drop([t._seq for t in cancelled])
            with self._lock:
                self._running = [t for t in self._running if t not in cancelled]
            # released since `_admit` let go of the lock: never read, never reported
            admitted = [t for t in admitted if t not in cancelled]
        if admitted:
            self._batch.add([t._seq for t in admitted])
            self._report(admitted, len(admitted))
        if not self._batch.seqs:
            return
        stepped = [t for t in self._running if t._seq in self._batch.seqs]
        self._batch.step()
        self._report(stepped, len(stepped))

    def _report(self, tickets: list[Ticket], size: int) -> None:
        """Give each ticket its new token; hand finished runs to the store."""
        for ticket in tickets:
            seq = ticket._seq
            with _TOKENIZE:  # sessions encode prompts at the same time
                # every token written since the last report: one per step, or a kept run's
                # steps at once when a run continues one (`lib.model.prefixes`)
                new = seq.chosen[len(ticket.pieces) :]
                pieces = ticket.pieces + [display_text(self.lm.tokenizer, t) for t in new]
                ids = ticket.ids + [int(t) for t in new]
                result = seq.result(self.lm) if seq.done else None
            if result is not None:
                self.store.put(ticket.key, result)
                with self._lock:
                    self._running.remove(ticket)
                    if self._live.get(ticket.key) is ticket:
                        del self._live[ticket.key]
                # ids before pieces: a reader that sees a token counted finds its id
                ticket._update(
                    ids=ids, pieces=pieces, batch_size=size, result=result, status="done"
                )
                ticket._seq = None  # after the result: `rows` always finds one of the two
            else:
                ticket._update(ids=ids, pieces=pieces, batch_size=size)

    def _fail(self, message: str) -> None:
        with self._lock:
            failed, self._running = self._running, []
            for ticket in failed:
                self._live.pop(ticket.key, None)
        self._batch = self._reset_batch()  # its cache may be half-updated
        for ticket in failed:
            ticket._update(status="failed", error=message)

    def _new_batch(self) -> Batch:
        """A batch that keeps finished runs' caches in the model's prefix cache, so "Next
        token" and a "what if" branch read only their new tokens (where runs can share a
        cache at all)."""
        return Batch(self.lm, self.lm.prefixes if self.lm.plain_cache else None)

    def _reset_batch(self) -> Batch:
        passes = self._batch.forward_passes
        batch = self._new_batch()
        batch.forward_passes = passes
        return batch
