"""Shared fixtures: the real bundled model (converted once per run) and a tiny random Llama."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Convert the bundled GGUF once per test run into a private cache, unless the developer
# points TAV_CACHE_DIR at a cache to reuse. Set before any lib import reads it.
if not os.environ.get("TAV_CACHE_DIR"):
    os.environ["TAV_CACHE_DIR"] = tempfile.mkdtemp(prefix="tav-test-cache-")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session")
def smollm2():
    """The bundled SmolLM2-135M-Instruct, loaded once for the whole run."""
    from lib.models import load_model

    return load_model()


@pytest.fixture(scope="session")
def smollm2_eager(smollm2):
    """An independent copy of the same weights with transformers' eager attention."""
    import torch
    from transformers import AutoModelForCausalLM

    from lib.models import converted_bundled_dir

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
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM_ARGS, chromium_path

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(server, browser):
    """A fresh browser context (a new Streamlit session) on the app, failing on JS errors."""
    from tests.browser import wait_idle

    context = browser.new_context(viewport={"width": 1400, "height": 1300}, accept_downloads=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server)
    wait_idle(pg)
    yield pg
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


@pytest.fixture
def app(smollm2):
    """The app under AppTest, first page drawn (the bundled model is converted beforehand)."""
    from streamlit.testing.v1 import AppTest

    from tests.apphelpers import assert_ok

    at = AppTest.from_file("../main.py", default_timeout=240)
    at.run()
    assert_ok(at)
    return at
