"""A converted-model cache that is damaged in place is detected and rebuilt."""

from __future__ import annotations

import shutil

from lib.model.generation import generate
from lib.model.loading import _folder_is_complete, converted_bundled_dir, load_model


def test_corrupt_cache_with_the_right_sizes_is_rebuilt(smollm2, tmp_path, monkeypatch):
    good = converted_bundled_dir()
    monkeypatch.setenv("TAV_CACHE_DIR", str(tmp_path))
    damaged = tmp_path / good.name
    shutil.copytree(good, damaged)
    weights = damaged / "model.safetensors"
    with open(weights, "r+b") as f:  # same size, garbage header: passes the size check
        f.write(b"\xff" * 64)
    assert _folder_is_complete(damaged)

    lm = load_model()  # fails to read the weights, converts again, loads

    assert _folder_is_complete(damaged)
    assert weights.read_bytes()[:8] != b"\xff" * 8
    text = lm.tokenizer.decode(generate(lm, "The capital of France is", 3).generated_ids)
    assert "Paris" in text
