"""Shared fixtures, and the test tiers they decide.

A test's tier follows from what it uses, never from the file it sits in: a test that
requests the real bundled model, a browser or a Streamlit server, a child process (the
benchmark runs as one) or the atlas's discovery job, directly or through another fixture,
is marked `slow` and with what it uses (HEAVY_FIXTURES); `uv run pytest -m "not slow"` runs
every other test. A fast test that reaches the real model, a child Python or the discovery
job without its fixture fails with a message saying which fixture to request
(tests/test_tiers.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# The bundled model is converted once per machine, into the cache the app itself uses
# (TAV_CACHE_DIR, else the user cache folder): a complete conversion is checked file by file
# and rebuilt if damaged (tests/test_cache_rebuild.py converts from scratch, every run).
# The atlas and the class pool record every run the tests make: into files of this test
# run, never the user's (the servers and child processes the tests start inherit them).
os.environ["TAV_ATLAS_DB"] = str(Path(tempfile.mkdtemp(prefix="tav-test-atlas-")) / "a.db")
os.environ["TAV_ATLAS_DIR"] = tempfile.mkdtemp(prefix="tav-test-discovery-")
os.environ["TAV_CLASS_POOL"] = str(Path(tempfile.mkdtemp(prefix="tav-test-pool-")) / "p.db")
# Ray (the optional distributed ingestion) must start its workers in this environment,
# not through `uv run` in a folder of their own (read when Ray is imported).
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"

GENERATION_S = pytest.StashKey[float]()
REFUSED = pytest.StashKey[list[str]]()  # what the fast-tier guard refused in a test

# What makes a test slow: the fixture that brings it, and the marker it gets.
HEAVY_FIXTURES = {
    "smollm2": "model",
    "smollm2_eager": "model",
    "server": "browser",
    "browser": "browser",
    "processes": "subprocess",
    "run_discovery": "discovery",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        uses = {HEAVY_FIXTURES[f] for f in fixtures if f in HEAVY_FIXTURES}
        for marker in sorted(uses):
            item.add_marker(marker)
        if uses:
            item.add_marker("slow")


def _refuse(what: str, fixture: str, seen: list[str]):
    def refuse(*_args, **_kwargs):
        message = (
            f"This test uses {what} without requesting the `{fixture}` fixture, so it was "
            f"put in the fast tier; request `{fixture}` (it marks the test slow)."
        )
        seen.append(message)  # failed at teardown too, in case the code under test catches it
        raise RuntimeError(message)

    return refuse


# Programs a fast test may not start: Python (the app, the benchmark, a service) and the
# launchers that start it.
CHILD_PYTHON = ("python", "streamlit", "uv")


def _program(args) -> str:
    if isinstance(args, str | bytes):  # a command line, as with shell=True
        return os.fsdecode(args).split()[0] if args.strip() else ""
    first = args if isinstance(args, os.PathLike) else args[0]
    return Path(os.fsdecode(first)).name


@pytest.fixture(autouse=True)
def _fast_tier_guard(request, monkeypatch):
    """In a fast test, the real model, the discovery job and child Python processes are out
    of reach (a library's own tool, such as joblib's `lscpu`, still runs). A fast-tier run
    (`-m "not slow"`) is where a misplaced test shows: in the full suite a model cached by
    an earlier slow test could reach it unseen."""
    if request.node.get_closest_marker("slow") is not None:
        yield
        return
    seen = request.node.stash[REFUSED] = []
    import lib.model.loading as loading

    monkeypatch.setattr(
        loading, "bundled_gguf_path", _refuse("the real bundled model", "smollm2", seen)
    )
    import lib.atlas.discovery as discovery

    monkeypatch.setattr(
        discovery, "run_discovery", _refuse("the discovery job", "run_discovery", seen)
    )
    popen, refuse = subprocess.Popen.__init__, _refuse("a child Python process", "processes", seen)

    def guarded(self, args, *rest, **kwargs):
        if Path(_program(args)).name.startswith(CHILD_PYTHON):
            refuse()
        popen(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded)
    yield
    if seen:
        pytest.fail(seen[0], pytrace=False)


class Processes:
    """Child processes of this repository's Python, in its folder and this test run's
    environment (the model cache, the atlas files): `python -m ...` as a user runs it."""

    def command(self, *args: str) -> list[str]:
        return [sys.executable, *args]

    def run(self, *args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("cwd", ROOT)
        return subprocess.run(self.command(*args), timeout=timeout, **kwargs)

    def start(self, *args: str, **kwargs) -> subprocess.Popen:
        kwargs.setdefault("cwd", ROOT)
        return subprocess.Popen(self.command(*args), **kwargs)


@pytest.fixture(scope="session")
def processes() -> Processes:
    return Processes()


@pytest.fixture(scope="session")
def smollm2(pytestconfig):
    """The bundled SmolLM2-135M-Instruct, loaded once for the whole run. One greedy
    generation is timed on it, so the run's summary says how fast this draw of the
    machine was (the suite's time is only comparable between draws through it)."""
    import time

    from lib.config import DEFAULT_MAX_TOKENS, DEFAULT_PROMPT
    from lib.model.generation import generate
    from lib.model.loading import load_model

    lm = load_model()
    start = time.perf_counter()
    generate(lm, DEFAULT_PROMPT, DEFAULT_MAX_TOKENS)
    pytestconfig.stash[GENERATION_S] = time.perf_counter() - start
    return lm


def pytest_terminal_summary(terminalreporter, config) -> None:
    seconds = config.stash.get(GENERATION_S, None)
    if seconds is not None:
        terminalreporter.write_line(
            f"One generation on this machine (the default prompt, 20 tokens, greedy): "
            f"{seconds:.2f} s"
        )


@pytest.fixture(scope="session")
def run_discovery():
    """The atlas's discovery job. UMAP is compiled by numba in every process that runs it
    (about 20 s on 2 cores), so a test that runs it is a slow test."""
    from lib.atlas.discovery import run_discovery

    return run_discovery


@pytest.fixture(scope="session")
def atlas_built(smollm2, run_discovery):
    """A real map in the app's default places, built as the Atlas page and `python -m
    lib.atlas build` build it: the built-in corpus read by the bundled model, then one
    discovery run. Returns its folder."""
    from lib.atlas.build import build_map
    from lib.atlas.discovery import default_output, latest_run
    from lib.atlas.store import Store

    if latest_run(default_output()) is None:
        build_map(Store(), smollm2, str(default_output()), min_cluster_size=15)
    return latest_run(default_output())


@pytest.fixture(scope="session")
def smollm2_eager(smollm2):
    """An independent copy of the same weights with transformers' eager attention."""
    import torch
    from transformers import AutoModelForCausalLM

    from lib.model.loading import converted_bundled_dir

    model = AutoModelForCausalLM.from_pretrained(
        converted_bundled_dir(), attn_implementation="eager", dtype=torch.float32
    )
    return model.eval()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def server(smollm2, artifacts_dir):
    """One `streamlit run main.py` for the browser tests (model converted beforehand)."""
    from tests.browser import streamlit_server

    with streamlit_server(artifacts_dir / "streamlit-server.log") as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import expect, sync_playwright

    from tests.browser import CHROMIUM_ARGS, chromium_path

    # A finished script run is waited for exactly (`AppSession.act`); what the browser does
    # after it (fetching Plotly's lazily loaded chunk, drawing WebGL) took over Playwright's
    # default 5 s on a loaded CI machine. `expect` still returns as soon as its check holds.
    expect.set_options(timeout=30_000)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def open_session(request, server, browser, artifacts_dir):
    """Open browser tabs on the app, each its own Streamlit session (`AppSession`).

    When the test fails, every tab leaves a full-page screenshot and its console log, and
    the server log is copied beside them, in test-artifacts/failures/. Any JavaScript error
    in a tab fails the test.
    """
    from tests.browser import AppSession

    opened: list[tuple[object, AppSession]] = []

    def open_one(
        name: str | None = None, width: int = 1400, height: int = 1300, query: str = ""
    ) -> AppSession:
        context = browser.new_context(
            viewport={"width": width, "height": height}, accept_downloads=True
        )
        # straight at the Generate page, where the tests type (the app opens on Welcome);
        # `query` is a shared link's settings, such as "tokens=6"
        url = f"{server}/generate" + (f"?{query}" if query else "")
        session = AppSession(context, url, name or f"tab{len(opened)}")
        opened.append((context, session))
        return session

    yield open_one
    report = getattr(request.node, "report_call", None)
    if report is None or report.failed:
        folder = artifacts_dir / "failures"
        stem = request.node.name
        for _, session in opened:
            session.save_evidence(folder, stem)
        log = artifacts_dir / "streamlit-server.log"
        if log.exists():
            shutil.copyfile(log, folder / f"{stem}-server.log")
    errors = [f"{s.name}: {e}" for _, s in opened for e in s.js_errors]
    for context, _ in opened:
        context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


@pytest.fixture
def session(open_session):
    """One browser tab on the app, first run finished."""
    return open_session("main")


@pytest.fixture
def app(smollm2):
    """The app under AppTest on the Generate page, where tests type their prompt (the app
    opens on Welcome; the bundled model is converted beforehand)."""
    from streamlit.testing.v1 import AppTest

    from tests.apphelpers import assert_ok

    at = AppTest.from_file("../main.py", default_timeout=240)
    at.run()  # the first run registers main.py's pages, so switch_page can find them
    assert_ok(at)
    at.switch_page("lessons/generate.py").run()
    assert_ok(at)
    return at


def _postgres_bin(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None
    )
    if found is None:
        pytest.fail(
            "PostgreSQL is not installed: `apt-get install postgresql` (.ci/run does).",
            pytrace=False,
        )
    return found


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server (Debian's package) for this test run, on a free port, its
    files in a temporary folder; yields a function that makes a fresh database and returns
    its postgresql:// URL. As root, the server runs as the `postgres` user (initdb refuses
    root)."""
    import uuid

    from tests.browser import free_port

    folder = Path(tempfile.mkdtemp(prefix="tav-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    init = [*as_user, _postgres_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
    subprocess.run([*init, "--no-sync"], check=True, capture_output=True)
    ctl = [*as_user, _postgres_bin("pg_ctl"), "-D", str(data)]
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    started = subprocess.run(
        [*ctl, "-o", options, "-l", str(folder / "log"), "-w", "-t", "120", "start"],
        capture_output=True,
        text=True,
    )  # -w: returns once the server accepts connections
    if started.returncode:
        pytest.fail(f"PostgreSQL did not start: {started.stderr}\n{(folder / 'log').read_text()}")
    base = f"postgresql://postgres@127.0.0.1:{port}"

    def database() -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"{base}/postgres", autocommit=True) as con:
            con.execute(f"CREATE DATABASE {name}")
        return f"{base}/{name}"

    try:
        yield database
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def new_store(request, tmp_path):
    """A function that opens a fresh, empty store: a SQLite file, or a database on the
    test run's PostgreSQL server (the same tests, both kinds)."""
    from lib.atlas.store import Store

    if request.param == "sqlite":
        return lambda name="s": Store(tmp_path / f"{name}.sqlite")
    database = request.getfixturevalue("postgres")
    return lambda name="s": Store(database())
