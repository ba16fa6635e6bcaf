"""The tiers follow from the fixtures a test uses (tests/conftest.py), and a fast test
cannot reach what would make it slow."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REFUSED


def test_a_fast_test_cannot_reach_the_real_model_a_child_python_or_discovery(request):
    assert request.node.get_closest_marker("slow") is None
    from lib.atlas import discovery
    from lib.model.loading import load_model

    with pytest.raises(RuntimeError, match="`smollm2`"):
        load_model()  # the bundled model
    with pytest.raises(RuntimeError, match="`processes`"):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    with pytest.raises(RuntimeError, match="`run_discovery`"):
        discovery.run_discovery(discovery.DiscoveryConfig())
    assert subprocess.run(["true"], check=True).returncode == 0  # other programs still run
    with pytest.raises(RuntimeError, match="`processes`"):
        subprocess.run("uv run python -c pass", shell=True, check=True)  # a launcher too
    refused = request.node.stash[REFUSED]
    assert len(refused) == 4  # and each is failed at teardown, even if the code caught it
    refused.clear()


def test_a_test_that_starts_processes_is_slow_and_says_why(request, processes):
    names = {m.name for m in request.node.iter_markers()}
    assert {"slow", "subprocess"} <= names and not {"model", "browser"} & names
    assert processes.run("-c", "print(6 * 7)").stdout.strip() == "42"
