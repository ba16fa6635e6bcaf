"""The app's scheduler at a distance: with `TAV_GENERATION_URL` set, an app server sends
its students' runs to a generation service (`python -m lib.serve`, one process or Ray
Serve replicas) instead of writing them itself.

`RemoteScheduler` answers as `lib.model.scheduler.Scheduler` does (`submit`, `ahead`,
`load`, `release`, `max_runs`) and its tickets are the same `Ticket`s, so the Generate
page shows the run's place, its tokens as they come and the Stop button as before. Each
ticket is followed on a thread of its own, reading the service's `POST /v1/tav/runs`
events; the finished result arrives whole (every layer and head, as `.npz`) and joins
this server's shared results, so every page shows it as if it had been written here.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import urllib.error
import urllib.request

from lib.model.batching import Prepared
from lib.model.loading import LoadedModel
from lib.model.result import GenerationResult
from lib.model.result_store import ResultStore
from lib.model.scheduler import Ticket

TIMEOUT_S = 600.0  # one run's longest silence


class RemoteScheduler:
    def __init__(self, url: str, lm: LoadedModel, store: ResultStore, max_runs: int = 32):
        self.url = url.rstrip("/")
        self.lm, self.store, self.max_runs = lm, store, max_runs
        self._lock = threading.Lock()
        self._live: dict[str, Ticket] = {}
        self._ahead: dict[int, int] = {}  # id(ticket) -> runs ahead of it at the service
        self._load = (0, 0)
        self._responses: dict[int, http.client.HTTPResponse] = {}

    @property
    def forward_passes(self) -> int:
        return 0  # made by the service

    def submit(self, key: str, prepared: Prepared) -> Ticket:
        with self._lock:
            if (live := self._live.get(key)) is not None:
                live.subscribers += 1
                return live
            if (result := self.store.get(key)) is not None:
                return Ticket.finished(key, result)
            ticket = Ticket(key, prepared)
            self._live[key] = ticket
        threading.Thread(target=self._follow, args=(ticket,), daemon=True).start()
        return ticket

    def ahead(self, ticket: Ticket) -> int:
        return self._ahead.get(id(ticket), 0)

    def load(self) -> tuple[int, int]:
        return self._load

    def release(self, ticket: Ticket) -> None:
        """This session no longer wants the run; the last one to let go cancels it (the
        connection closes, and the service frees its place)."""
        with self._lock:
            if not ticket.let_go():
                return
            self._live.pop(ticket.key, None)
            response = self._responses.pop(id(ticket), None)
        ticket._update(status="cancelled")
        if response is not None:
            response.close()

    def close(self, timeout: float = 60.0) -> None:
        """Nothing to wait for: the service writes the runs."""

    def _follow(self, ticket: Ticket) -> None:
        p = ticket.prepared
        body = {"model": self.lm.spec, "prompt": p.prompt, "settings": p.settings.to_dict()}
        req = urllib.request.Request(
            self.url + "/v1/tav/runs",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as response:
                with self._lock:
                    self._responses[id(ticket)] = response
                for raw in response:
                    if ticket.over:  # cancelled here
                        return
                    line = raw.decode("utf-8").strip()
                    if line.startswith("data: "):
                        self._event(ticket, json.loads(line[6:]))
        except urllib.error.HTTPError as err:
            self._fail(ticket, _message(err))
        except (OSError, http.client.HTTPException) as err:
            self._fail(ticket, f"The generation service at {self.url} cannot be reached: {err}")
        except Exception as err:  # noqa: BLE001 - not JSON, not a result, another model
            # (a Stop closes the connection under the reader: whatever that raises, the
            # ticket is already cancelled and stays so)
            self._fail(ticket, f"The generation service's answer cannot be used: {err}")
        finally:
            with self._lock:
                if self._live.get(ticket.key) is ticket:
                    del self._live[ticket.key]
                self._responses.pop(id(ticket), None)
                self._ahead.pop(id(ticket), None)
            if not ticket.over:
                self._fail(ticket, "The generation service ended the run without a result.")

    def _event(self, ticket: Ticket, event: dict) -> None:
        self._ahead[id(ticket)] = int(event.get("ahead", 0))
        self._load = (int(event.get("running", 0)), int(event.get("waiting", 0)))
        pieces = ticket.pieces + [str(x) for x in event.get("pieces", [])]
        status = event.get("status")
        if status == "done":
            result = GenerationResult.from_npz(base64.b64decode(event["npz"]))
            if result.model_spec != self.lm.spec:
                raise ValueError(f"it wrote with {result.model_spec}, not {self.lm.spec}")
            self.store.put(ticket.key, result)
            ticket._update(pieces=pieces, result=result, status="done", unless_over=True)
        elif status in ("failed", "cancelled"):
            self._fail(ticket, str(event.get("error") or "The run did not finish."))
        else:  # a Stop pressed meanwhile stays a Stop
            now = status if status in ("queued", "running") else "running"
            ticket._update(pieces=pieces, batch_size=int(event.get("batch_size", 0)), status=now,
                           unless_over=True)  # fmt: skip

    def _fail(self, ticket: Ticket, message: str) -> None:
        ticket._update(status="failed", error=message, unless_over=True)


def _message(err: urllib.error.HTTPError) -> str:
    """The service's own words for a refused run (OpenAI's error shape)."""
    try:
        return str(json.loads(err.read())["error"]["message"])
    except (ValueError, KeyError, TypeError, OSError):
        return f"The generation service answered {err.code}."
