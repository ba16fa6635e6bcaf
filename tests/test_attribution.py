"""Direct logit attribution on every family and on the bundled model: the parts add up to
the model's own logit, read from a plain forward pass with no hooks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.analysis.attribution import logit_attribution
from lib.model.generation import generate
from tests.families import FAMILIES, family_lm

PROMPT = "the old wizard walked through the forest"


def plain_logits(lm, ids) -> np.ndarray:
    """(T, V) the model's logits from its own forward pass, nothing of ours in the way."""
    with torch.inference_mode():
        out = lm.model(torch.tensor([list(ids)]), use_cache=False)
    return out.logits[0].double().numpy()


def check(lm, result, tol: float) -> None:
    logits = plain_logits(lm, result.token_ids[:-1])
    for step in range(result.n_steps):
        a = logit_attribution(lm, result, step)
        q = result.query_position(step)
        assert a.token_id == result.token_ids[q + 1]
        assert a.logit == pytest.approx(logits[q, a.token_id], abs=tol)
        assert a.total == pytest.approx(a.logit, abs=tol)  # the parts add up
        np.testing.assert_allclose(a.heads.sum(axis=1) + a.attn_bias, a.attn, atol=tol)
        assert a.scale > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_the_parts_add_up_to_the_logit_on_every_family(family):
    lm = family_lm(family)
    check(lm, generate(lm, PROMPT, 4), 1e-4)


def test_the_parts_add_up_on_the_bundled_model(smollm2):
    result = generate(smollm2, "The capital of France is", 4)
    check(smollm2, result, 1e-4)
    a = logit_attribution(smollm2, result, 0)
    assert a.heads.shape == (30, 9) and np.abs(a.mlp).max() > 0
