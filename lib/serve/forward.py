"""Every finished run's fingerprints, sent to the atlas sidecar as they come (its `POST
/fingerprint`, one token each, keyed by the run so a run sent twice is stored once): the
seed's path from the server that writes the text to the map that grows from it.

Only numbers go: the 20 of each token, its step and the model's id; never the text. The
sending happens on a thread of its own, so no request waits for the sidecar; a sidecar
that is down costs only those fingerprints (counted in `failed`, and logged once).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
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

    def send(self, run_key: str, result: GenerationResult) -> None:
        try:
            self._queue.put_nowait((run_key, result))
        except queue.Full:
            self.failed += result.n_steps
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
            run_key, result = self._queue.get()
            try:
                for step, v in enumerate(run_fingerprints(result).vectors):
                    self._post({"request_id": run_key, "vector": [float(x) for x in v],
                                "step": step, "model": result.model_spec})  # fmt: skip
            finally:
                self._queue.task_done()

    def _post(self, body: dict) -> None:
        req = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                r.read()
            self.sent += 1
        except (urllib.error.URLError, OSError, ValueError) as err:
            self.failed += 1
            if not self._warned:
                self._warned = True
                log.warning("The atlas sidecar at %s did not take a fingerprint: %s", self.url, err)
