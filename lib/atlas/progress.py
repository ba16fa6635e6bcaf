"""A discovery job's live progress on a WebSocket (`discover --websocket-port N`).

The job serves its progress events on ws://127.0.0.1:N: every client gets the latest event
when it connects, then each new one as it happens, and a last one with `done` true. While
it runs, a small file in the job's output folder (`progress.json`) says on which port, so
the atlas page (or any client) finds a job started from the command line. The file goes
when the job ends; a file whose job no longer answers is treated as no job.

An event: {"run_id", "stage", "fraction" (0-1), "done", "error" (or null)}.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

FILE = "progress.json"


class ProgressServer:
    """The job's side: a WebSocket server in a background thread (port 0: any free one)."""

    def __init__(self, port: int, output: str | os.PathLike, run_id: str) -> None:
        from websockets.sync.server import serve

        self.run_id = run_id
        self._clients: set = set()
        self._last: str | None = None
        self._lock = threading.Lock()
        self._server = serve(self._serve_client, "127.0.0.1", port)
        self.port = int(self._server.socket.getsockname()[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.file = Path(output) / FILE
        self.file.parent.mkdir(parents=True, exist_ok=True)
        info = {"port": self.port, "pid": os.getpid(), "run_id": run_id, "started": time.time()}
        _write(self.file, info)

    def _serve_client(self, ws) -> None:
        with self._lock:
            self._clients.add(ws)
            last = self._last
        try:
            if last is not None:
                ws.send(last)
            for _ in ws:  # clients only listen; this returns when they close
                pass
        finally:
            with self._lock:
                self._clients.discard(ws)

    def send(self, stage: str, fraction: float, done: bool = False, error: str | None = None):
        event = {
            "run_id": self.run_id,
            "stage": stage,
            "fraction": round(float(fraction), 4),
            "done": done,
            "error": error,
        }
        message = json.dumps(event)
        with self._lock:
            self._last = message
            clients = list(self._clients)
        for ws in clients:
            try:
                ws.send(message)
            except Exception:  # noqa: BLE001 - a client that left; the others still hear
                with self._lock:
                    self._clients.discard(ws)

    def close(self, stage: str = "finished", error: str | None = None) -> None:
        """Send the last event and stop serving. A finished job takes its file away (the
        page then shows the new map); a failed one leaves its last event in the file, for
        the page to say why (the next job's file replaces it)."""
        self.send(stage, 1.0 if error is None else 0.0, done=True, error=error)
        if error is None:
            self.file.unlink(missing_ok=True)
        else:
            _write(self.file, {"final": json.loads(self._last or "{}")})
        time.sleep(0.2)  # clients read the last event before the connection closes
        self._server.shutdown()


def _write(path: Path, info: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(path)  # readers see the old file or the new one, never half of one


def latest_event(output: str | os.PathLike, timeout: float = 1.0) -> dict | None:
    """The latest event of a job running for this output folder (or the last one of a job
    that failed), or None: no job, or one that does not answer (it died)."""
    from websockets.exceptions import WebSocketException
    from websockets.sync.client import connect

    path = Path(output) / FILE
    try:
        info = json.loads(path.read_text())
        if "final" in info:
            return info["final"]
        with connect(f"ws://127.0.0.1:{int(info['port'])}", open_timeout=timeout) as ws:
            return json.loads(ws.recv(timeout=timeout))
    except (OSError, ValueError, KeyError, TimeoutError, WebSocketException):
        return None
