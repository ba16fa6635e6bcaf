"""Every finished run's fingerprints, sent to the atlas sidecar as they come (its `POST
/fingerprint`, one token each, keyed by the run so a run sent twice is stored once): the
seed's path from the server that writes the text to the map that grows from it.

Only numbers go: the 20 of each token, its step and the model's id; never the text, and
the run's key only as a keyed hash (a secret of this process), so nobody reading the store
can test a guessed prompt against it. The sending happens on a thread of its own, so no
request waits for the sidecar; a sidecar that is down, or answers nonsense, costs only
those fingerprints (counted in `failed`, and logged once).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import secrets
import threading
import urllib.request

from lib.model.result import GenerationResult

log = logging.getLogger("tav")
MAX_WAITING = 1000  # runs waiting to be sent; more are dropped (and counted)


class Forwarder:
    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/") + "/fingerprint"
        self.timeout = timeout
        self.sent = self.failed = 0
        self._queue: queue.Queue[tuple[str, GenerationResult]] = queue.Queue(MAX_WAITING)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._warned = False
        self._secret = secrets.token_bytes(32)

    def send(self, run_key: str, result: GenerationResult) -> None:
        name = hmac.new(self._secret, run_key.encode(), hashlib.sha256).hexdigest()[:32]
        try:
            self._queue.put_nowait((name, result))
        except queue.Full:
            self._count(failed=result.n_steps)
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, daemon=True, name="tav-fwd")
                self._thread.start()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every run queued so far is sent (True), or `timeout` passes."""
        done = threading.Event()
        threading.Thread(target=lambda: (self._queue.join(), done.set()), daemon=True).start()
        return done.wait(timeout)

    def _work(self) -> None:
        from lib.analysis.fingerprint import run_fingerprints

        while True:
            name, result = self._queue.get()
            try:
                vectors = run_fingerprints(result).vectors
                for step, v in enumerate(vectors):
                    self._post({"request_id": name, "vector": [float(x) for x in v],
                                "step": step, "model": result.model_spec})  # fmt: skip
            except Exception as err:  # noqa: BLE001 - this thread must outlive any one run
                self._count(failed=result.n_steps)
                log.warning("The fingerprints of a run could not be sent: %s", err)
            finally:
                self._queue.task_done()

    def _count(self, sent: int = 0, failed: int = 0) -> None:
        with self._lock:
            self.sent += sent
            self.failed += failed

    def _post(self, body: dict) -> None:
        req = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                r.read()
            self._count(sent=1)
        except Exception as err:  # noqa: BLE001 - refused, down, or a broken answer
            self._count(failed=1)
            if not self._warned:
                self._warned = True
                log.warning("The atlas sidecar at %s did not take a fingerprint: %s", self.url, err)
