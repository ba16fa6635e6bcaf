"""A real Streamlit server and Debian's Chromium driven by Playwright, for browser tests."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

# A run that was interrupted by a newer rerun (FINISHED_EARLY_FOR_RERUN) is not the end.
_COMPLETED = (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY)

# A Vega-Lite chart is drawn once it has its SVG or canvas (Altair renders after the run).
VEGA_DRAWN = "[data-testid=stVegaLiteChart] svg, [data-testid=stVegaLiteChart] canvas"

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("TAV_CHROMIUM") or shutil.which("chromium")
    if not path:
        raise RuntimeError("Chromium not found: install Debian's chromium (.ci/run does).")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(
    url: str,
    proc: subprocess.Popen,
    deadline: float,
    poll: float = 0.3,
    path: str = "/_stcore/health",
) -> bool:
    """Wait until the server at `url` answers its health check at `path` (Streamlit's by
    default) (True), or its process ends or `deadline` (time.monotonic) passes (False)."""
    while True:
        try:
            with urllib.request.urlopen(f"{url}{path}", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(poll)


@contextlib.contextmanager
def streamlit_server(
    log_path: Path, timeout: float = 120, script: str = "main.py"
) -> Iterator[str]:
    """Run `streamlit run <script>` on a free port; yield its URL; stop it afterwards."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        script,
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            if not wait_healthy(url, proc, time.monotonic() + timeout):
                raise RuntimeError(f"streamlit did not start; see {log_path}")
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


class AppSession:
    """One browser tab on the app (its own Streamlit session) that knows when a run ends.

    Streamlit ends every script run with a `script_finished` message on the tab's websocket.
    Waiting for that message, rather than for a spinner to vanish after a fixed pause, is
    exact on two busy cores: an action that starts a rerun returns only once that rerun is
    over. Actions that start no rerun (downloads, hovering) are plain Playwright calls.
    """

    def __init__(self, context, url: str, name: str = "session") -> None:
        self.name = name
        self.page = context.new_page()
        self.finished = 0  # completed runs seen on this tab
        self.fragment_runs = 0  # of which reran only a fragment (st.fragment)
        self.received = bytearray()  # every binary frame the server sent this tab
        self.js_errors: list[str] = []
        self.console: list[str] = []
        self.page.on("websocket", lambda ws: ws.on("framereceived", self._frame))
        self.page.on("pageerror", lambda e: self.js_errors.append(str(e)))
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.act(lambda: self.page.goto(url))

    def _frame(self, payload: bytes | str) -> None:
        if isinstance(payload, str):
            return
        self.received += payload
        msg = ForwardMsg()
        try:
            msg.ParseFromString(payload)
        except Exception:  # noqa: BLE001 - not a ForwardMsg; not ours to judge
            return
        if msg.WhichOneof("type") == "script_finished" and msg.script_finished in _COMPLETED:
            self.finished += 1
            fragment = msg.script_finished == ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY
            self.fragment_runs += fragment

    def start(self, action: Callable[[], object]) -> int:
        """Do `action` without waiting; returns the mark that `wait_run` waits past."""
        mark = self.finished
        action()
        return mark

    def wait_run(self, mark: int, timeout_ms: int = 240_000) -> None:
        """Wait until a run that started after `mark` has finished."""
        deadline = time.monotonic() + timeout_ms / 1000
        while self.finished <= mark:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no run finished within {timeout_ms} ms")
            self.page.wait_for_timeout(25)  # lets Playwright deliver the websocket frames

    def act(self, action: Callable[[], object], timeout_ms: int = 240_000) -> None:
        """Do `action` (a click, a key press) and wait for the rerun it starts to finish."""
        self.wait_run(self.start(action), timeout_ms)

    def fill(self, label: str, text: str) -> None:
        """Type `text` into the labelled box and commit it (Streamlit commits on blur)."""
        box = self.page.get_by_label(label)
        if box.input_value() == text:
            return  # unchanged: no rerun to wait for
        box.fill(text)
        self.act(lambda: box.press("Tab"))

    def click(self, role: str, name: str) -> None:
        self.act(lambda: self.page.get_by_role(role, name=name).click())

    def open_page(self, title: str) -> None:
        nav = self.page.get_by_test_id("stSidebarNav")
        link = nav.get_by_text(title, exact=True)
        if not link.is_visible():
            # Streamlit folds a long navigation behind "View N more" (a click, no rerun).
            nav.get_by_text(re.compile(r"^View \d+ more$")).first.click()
            link.wait_for(state="visible")
        self.act(lambda: link.click())

    def save_evidence(self, folder: Path, stem: str) -> None:
        """A screenshot and the console log, for a failed test to explain itself."""
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):  # a crashed page has no screenshot to give
            self.page.screenshot(path=str(folder / f"{stem}-{self.name}.png"), full_page=True)
        (folder / f"{stem}-{self.name}-console.txt").write_text(
            "\n".join(self.console + [f"pageerror: {e}" for e in self.js_errors]),
            encoding="utf-8",
        )
