"""One sink rule: every view shows the same numbers for the same step of a real run."""

from __future__ import annotations

import numpy as np
import pytest

from lib.analysis.attention import aggregate, split_step
from lib.analysis.fingerprint import run_fingerprints
from lib.model.generation import generate
from lib.viz.matrices import view


@pytest.mark.parametrize("hide", [False, True])
def test_graph_matrices_and_fingerprints_read_the_same_row(smollm2, hide):
    r = generate(smollm2, "The old wizard walked through the forest, and the wizard", 6)
    rows = aggregate(r)  # mean over all layers and heads, (steps, keys)
    P = r.prompt_len
    fps = run_fingerprints(r, exclude_first=hide)
    for s in range(r.n_steps):
        K = P + s  # keys the query of step s can see
        # By hand: the mean row, the sink hidden and the rest renormalised.
        row = rows[s, :K].astype(np.float64)
        if hide:
            row = np.concatenate([[0.0], row[1:] / row[1:].sum()])
        # The matrices page: the same row, key 0 left out when hidden.
        m = view(rows[s : s + 1, :K], np.array([P - 1 + s]), r.texts, hide)
        np.testing.assert_allclose(m.values[0], row[m.key_pos], atol=1e-6)
        if hide:
            assert m.values[0].sum() == pytest.approx(1.0, abs=1e-5)
        # The graph: each part of the same row, divided by its own sum.
        g = split_step(r, rows, s, hide_first=hide)
        prompt_part = row[r.bos_offset : P]
        np.testing.assert_allclose(g.input_norm, prompt_part / prompt_part.sum(), atol=1e-5)
        if s:
            out = row[P:K]
            np.testing.assert_allclose(g.output_norm, out / out.sum(), atol=1e-5)
        # The fingerprint's distance bands: sums of the same row.
        distance = K - 1 - np.arange(K)
        bands = [row[distance < 10].sum(), row[(distance >= 10) & (distance < 100)].sum()]
        np.testing.assert_allclose(fps.vectors[s, :2], bands, atol=1e-5)
