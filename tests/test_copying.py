"""Copying heads from OV-circuit eigenvalues, and the embedding clusters: planted answers on a
tiny Llama, an explicit V x V check, the real model, and both pages under AppTest."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.analysis.head_roles import ROLES, HeadRoles
from lib.analysis.weights import EmbeddingPCA, OVCopying, kmeans_clusters, ov_copying
from lib.viz import head_roles as vh
from lib.viz import weights as vw
from tests.apphelpers import assert_ok
from tests.tiny import tiny_lm

D = 8  # the tiny model's head size: hidden 32 / 4 heads


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def planted_lm():
    """Layer 0: head 0 copies tokens 0..7 exactly (identity), head 1 negates them.

    Token i embeds to basis vector e_i (tied unembedding); both heads read KV group 0,
    whose W_V picks residual dimensions 0..7; head 0's W_O writes them back, head 1's
    writes their negatives. Norm gains are 1 (the default).
    """
    lm = tiny_lm()
    m = lm.model
    V, d_model = m.config.vocab_size, m.config.hidden_size
    with torch.no_grad():
        emb = torch.zeros(V, d_model)
        emb[:, :V] = torch.eye(V)
        m.model.embed_tokens.weight.copy_(emb)
        m.lm_head.weight.copy_(emb)
        attn = m.model.layers[0].self_attn
        pick = torch.zeros(D, d_model)
        pick[:, :D] = torch.eye(D)
        attn.v_proj.weight[:D] = pick  # KV group 0 serves heads 0 and 1
        attn.o_proj.weight[:, :D] = pick.T
        attn.o_proj.weight[:, D : 2 * D] = -pick.T
    return lm


def test_planted_identity_head_scores_plus_one_and_its_negative_minus_one():
    lm = planted_lm()
    m = lm.model
    # The planted token-space map, written out: U W_O,0 W_V,0 E^T is the identity on 0..7.
    E = _np(m.model.embed_tokens.weight)
    attn = m.model.layers[0].self_attn
    circuit = E @ _np(attn.o_proj.weight)[:, :D] @ _np(attn.v_proj.weight)[:D] @ E.T
    assert np.allclose(circuit[:D, :D], np.eye(D)) and np.allclose(circuit[D:], 0)

    cp = ov_copying(lm)
    assert cp.eigenvalues.shape == (3, 4, D) and cp.score.shape == (3, 4)
    assert cp.score[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert cp.score[0, 1] == pytest.approx(-1.0, abs=1e-5)
    assert np.allclose(cp.eigenvalues[0, 0], 1.0, atol=1e-5)
    assert np.allclose(cp.eigenvalues[0, 1], -1.0, atol=1e-5)
    assert cp.strongest(1)[0][:2] == (0, 0)


def explicit_circuit(lm, layer: int, head: int) -> np.ndarray:
    """The V x V circuit (row = source token, column = logit) through the model's own
    modules: one-hot tokens -> embedding -> input-norm gain -> v_proj -> transformers'
    repeat_kv -> only `head` kept -> o_proj -> final-norm gain -> lm_head."""
    from transformers.models.llama.modeling_llama import repeat_kv

    m = lm.model.double()
    block = m.model.layers[layer]
    attn = block.self_attn
    H, n_kv = m.config.num_attention_heads, m.config.num_key_value_heads
    with torch.no_grad():
        x = m.model.embed_tokens(torch.arange(m.config.vocab_size))  # (V, d_model)
        v = attn.v_proj(x * block.input_layernorm.weight)  # (V, KV * d)
        v = v.view(1, -1, n_kv, D).transpose(1, 2)  # (1, KV, V, d): repeat_kv's layout
        per_head = repeat_kv(v, H // n_kv)[0]  # (H, V, d)
        keep = torch.zeros_like(per_head)
        keep[head] = per_head[head]
        out = attn.o_proj(keep.transpose(0, 1).reshape(x.shape[0], H * D))
        logits = m.lm_head(out * m.model.norm.weight)
    m.float()
    return logits.numpy()


@pytest.mark.parametrize("tied", [False, True])
def test_small_eigenvalues_are_the_nonzero_eigenvalues_of_the_vocab_circuit(tied):
    lm = tiny_lm(seed=3)
    m = lm.model
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for norm in [m.model.norm, *(b.input_layernorm for b in m.model.layers)]:
            norm.weight.copy_(torch.randn(norm.weight.shape, generator=g))  # some negative
    if tied:
        m.lm_head.weight = m.model.embed_tokens.weight
    cp = ov_copying(lm)
    for layer in range(3):
        for head in range(4):
            big = np.linalg.eigvals(explicit_circuit(lm, layer, head))  # 14 values, rank 8
            big = big[np.argsort(-np.abs(big))]
            assert np.abs(big[D:]).max() < 1e-8 * np.abs(big[0])  # the rest are zero
            small = cp.eigenvalues[layer, head].astype(np.complex128)
            left = list(big[:D])
            for ev in small:  # the same multiset: match each to its nearest, once
                i = int(np.argmin([abs(ev - b) for b in left]))
                assert abs(ev - left.pop(i)) < 1e-4 * np.abs(big[0])
            expected = big.real.sum() / np.abs(big).sum()
            assert cp.score[layer, head] == pytest.approx(expected, abs=1e-4)


def test_result_shapes_are_checked():
    with pytest.raises(ValueError):
        OVCopying(np.zeros((2, 3, 4), np.complex64), np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError):
        OVCopying(np.zeros((2, 3, 4), np.complex128), np.zeros((2, 3), np.float32))


def test_kmeans_finds_planted_clusters_numbered_by_first_appearance():
    rng = np.random.default_rng(0)
    centres = np.array([[10.0, 0, 0], [0, 10.0, 0], [0, 0, 10.0]])
    truth = np.array([2, 2, 0, 1, 0, 1, 2, 0])
    x = centres[truth] + rng.normal(scale=0.1, size=(len(truth), 3))
    assert kmeans_clusters(x, 3).tolist() == [0, 0, 1, 2, 1, 2, 0, 1]
    assert kmeans_clusters(x[:1], 5).tolist() == [0]  # k never exceeds the tokens


def test_pca_chart_colours_clusters_and_marks_prompt_and_generated():
    pca = EmbeddingPCA(
        np.array([5, 6, 7]),
        np.zeros((3, 2), np.float32),
        np.array([0.5, 0.2], np.float32),
        np.array([0, 1, 0]),
        np.array([1, 2]),
        np.ones((2, 2), np.float32),
    )
    chart = vw.pca_chart(pca, ["a", "b", "c"], ["prompt", "generated", "both"], ["x", "y"])
    chart = chart.to_dict()
    dots = chart["layer"][1]["encoding"]  # over the grey vocabulary sample (layer 0)
    assert dots["color"]["field"] == "cluster" and dots["shape"]["field"] == "in"
    rows = next(d for d in chart["datasets"].values() if "cluster" in d[0])
    assert [(r["cluster"], r["in"]) for r in rows] == [
        ("cluster 1", "prompt"),
        ("cluster 2", "generated"),
        ("cluster 1", "both"),
    ]
    assert "k = 2" in vw.pca_caption(pca, 576)


def test_copying_charts_and_the_head_roles_grid():
    score = np.array([[1.0, -0.5], [0.25, 0.0]], np.float32)
    ev = np.array([[[2, 1j], [-1, 0]], [[1, 1], [0, 0]]], np.complex64)
    cp = OVCopying(ev, score)
    grid = vw.copying_grid(cp).to_dict()
    assert grid["encoding"]["color"]["scale"] == {
        "scheme": "redblue",
        "domain": [-1, 1],
        "domainMid": 0,
    }
    spec = vw.spectrum_frame(cp.eigenvalues[0, 0])
    assert spec["real"].tolist() == pytest.approx([1.0, 0.0])  # divided by the largest |ev|
    assert spec["imaginary"].tolist() == pytest.approx([0.0, 0.5])
    assert len(vw.spectrum_chart(cp.eigenvalues[0, 0]).to_dict()["layer"]) == 3  # 2 zero lines
    assert "layer 0 head 0 (1.000)" in vw.copying_caption(cp)
    assert "1 of its 2 eigenvalues" in vw.spectrum_caption(cp, 0, 0)

    roles = HeadRoles(
        np.full((len(ROLES), 2, 2), 0.1, np.float32),
        np.full(4, 0.05, np.float32),
        np.arange(6),
        np.zeros(0),
        False,
    )
    assert vh.score_options(True).index(vh.COPYING) == ROLES.index("duplicate_token") + 1
    assert vh.COPYING not in vh.score_options(False)
    df = vh.grid_frame(roles, vh.COPYING, score)
    assert df.loc[(df.layer == 0) & (df["head"] == 1), "score"].item() == pytest.approx(-0.5)
    chart = vh.grid_chart(df, vh.COPYING).to_dict()
    assert chart["encoding"]["color"]["scale"]["domain"] == [-1, 1]
    assert vh.PICK in str(chart["params"])  # still clickable
    best = vh.strongest_heads(roles, per_role=1, copying=score)
    row = best[best.role == vw.COPYING_TITLE]
    assert (row.layer.item(), row["head"].item(), row.score.item()) == (0, 0, 1.0)


# ---- the bundled SmolLM2 ----------------------------------------------------------------


def test_real_model_scores_and_the_trace(smollm2):
    cp = ov_copying(smollm2)
    assert cp.score.shape == (30, 9) and cp.eigenvalues.shape == (30, 9, 64)
    assert np.isfinite(cp.score).all() and np.isfinite(cp.eigenvalues).all()
    assert (np.abs(cp.score) <= 1 + 1e-6).all()
    # sum(eigenvalues) = trace of the V x V circuit = sum over tokens of M[t, t], read off
    # row by row without building M: (U diag(g_f) W_O)[t] . (E diag(g_in) W_V^T)[t].
    layer, head, _ = cp.strongest(1)[0]
    m = smollm2.model

    def f32(t: torch.Tensor) -> np.ndarray:
        return t.detach().float().numpy()

    E, U = f32(m.model.embed_tokens.weight), f32(m.lm_head.weight)
    block = m.model.layers[layer]
    g = head // (9 // 3)
    w_v = f32(block.self_attn.v_proj.weight)[g * 64 : (g + 1) * 64]
    w_o = f32(block.self_attn.o_proj.weight)[:, head * 64 : (head + 1) * 64]
    reads = ((E * f32(block.input_layernorm.weight)) @ w_v.T).astype(np.float64)  # (V, d)
    writes = ((U * f32(m.model.norm.weight)) @ w_o).astype(np.float64)  # (V, d)
    trace = float(np.einsum("td,td->", writes, reads))
    total = float(cp.eigenvalues[layer, head].astype(np.complex128).sum().real)
    assert total == pytest.approx(trace, rel=1e-3)


def test_app_shows_copying_heads_and_clusters(app):
    at = app
    at.slider(key="max_tokens__w").set_value(6)
    next(b for b in at.button if b.label == "Generate").click().run()
    assert_ok(at)
    at.switch_page("lessons/lenses.py").run()
    at.session_state["lens_tab"] = "Embeddings & weights"  # what a click on the tab does
    at.run()
    assert_ok(at)
    assert len(at.get("vega_lite_chart")) == 4  # PCA, OV spectra, copying grid, spectrum
    captions = " ".join(c.value for c in at.caption)
    assert "k-means" in captions and "Strongest copier" in captions
    at.selectbox(key="lens_cp_layer__w").set_value(27).run()
    at.selectbox(key="lens_cp_head__w").set_value(2).run()
    assert_ok(at)
    assert any(c.value.startswith("Layer 27 head 2: copying score") for c in at.caption)

    at.switch_page("lessons/head_roles.py").run()
    at.selectbox(key="hr_role__w").set_value(vh.COPYING).run()
    assert_ok(at)
    assert any("Weights only" in c.value for c in at.caption)
    chart_key = at.session_state["hr_grid_key"]
    at.session_state[chart_key] = {"selection": {vh.PICK: [{"layer": 27, "head": 1}]}}
    at.run()  # clicking a copying cell opens the head, as for the other scores
    assert_ok(at)
    assert at.title[0].value == "Attention matrices"
    assert (at.session_state["layer"], at.session_state["head"]) == (27, 1)
