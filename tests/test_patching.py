"""Activation patching against an independent computation written here: plain forward
hooks of the test's own, one patched pass at a time, on tiny models of two families and
on the bundled model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.analysis.patching import PRESETS, PatchError, answer_id, encode_pair, patch_sweep
from tests.families import family_lm

CLEAN = "the old wizard walked through the forest"
CORRUPT = "the old cat walked through the mat"


def reference(lm, clean, corrupt, answer, wrong, site, layers=None) -> np.ndarray:
    """The recovered fractions, one unbatched pass per patch, with hooks written here (of
    the first `layers` layers, or all)."""
    parts, d = lm.parts, lm.parts.head_dim
    module = {"resid_pre": parts.blocks, "attn": parts.attn, "mlp": parts.mlp,
              "head": parts.out_proj}[site]  # fmt: skip
    pre = site in ("resid_pre", "head")

    def run(ids, hook=None, layer=None):
        handle = None
        if hook is not None:
            m = module[layer]
            handle = (m.register_forward_pre_hook(hook, with_kwargs=True) if pre
                      else m.register_forward_hook(hook))  # fmt: skip
        try:
            with torch.no_grad():
                logits = lm.model(torch.tensor([ids])).logits[0, -1].double()
        finally:
            if handle is not None:
                handle.remove()
        return float(logits[answer] - logits[wrong])

    saved = {}

    def saver(layer):
        def grab_pre(m, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            saved[layer] = x[0].clone()

        def grab_post(m, args, out):
            saved[layer] = (out[0] if isinstance(out, tuple) else out)[0].clone()

        return grab_pre if pre else grab_post

    n = parts.n_layers if layers is None else layers
    for layer in range(n):
        run(clean, saver(layer), layer)
    clean_m, corrupt_m = run(clean), run(corrupt)
    width = parts.n_heads if site == "head" else len(clean)
    out = np.zeros((n, width))
    for layer in range(n):
        for j in range(width):

            def swap(x, layer=layer, j=j):
                x = x.clone()
                if site == "head":
                    x[0, :, j * d : (j + 1) * d] = saved[layer][:, j * d : (j + 1) * d]
                else:
                    x[0, j] = saved[layer][j]
                return x

            def hook(m, args, kwargs_or_out=None, *rest):
                if pre:
                    if args:
                        return (swap(args[0]), *args[1:]), kwargs_or_out
                    x = swap(kwargs_or_out["hidden_states"])
                    return args, {**kwargs_or_out, "hidden_states": x}
                out_ = kwargs_or_out
                if isinstance(out_, tuple):
                    return (swap(out_[0]), *out_[1:])
                return swap(out_)

            out[layer, j] = run(corrupt, hook, layer)
    return (out - corrupt_m) / (clean_m - corrupt_m)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize("site", ["resid_pre", "attn", "mlp", "head"])
def test_a_sweep_equals_one_hooked_pass_per_patch(family, site):
    lm = family_lm(family)
    clean, corrupt = encode_pair(lm, CLEAN, CORRUPT)
    answer, wrong = answer_id(lm, "sat"), answer_id(lm, "cat")
    sweep = patch_sweep(lm, clean, corrupt, answer, wrong, site, batch=5)
    want = reference(lm, clean, corrupt, answer, wrong, site)
    np.testing.assert_allclose(sweep.recovered, want, atol=1e-5)
    if site == "resid_pre":  # entering the first block, a position whose token is the
        same = np.array(clean) == np.array(corrupt)  # same in both carries nothing
        np.testing.assert_allclose(sweep.recovered[0][same], 0.0, atol=1e-6)


def test_prompts_of_two_lengths_and_long_answers_are_refused():
    lm = family_lm("llama")
    with pytest.raises(PatchError, match="same length"):
        encode_pair(lm, "the old wizard", "the cat")
    with pytest.raises(PatchError, match="one"):
        answer_id(lm, "the cat")
    with pytest.raises(PatchError, match="same"):
        encode_pair(lm, "the old wizard", "the old wizard")
    with pytest.raises(PatchError, match="at most 64"):
        encode_pair(lm, " ".join(["the cat"] * 40), " ".join(["the mat"] * 40))


def test_a_concurrent_plain_forward_in_another_thread_is_unaffected():
    """Sessions are threads sharing one model: while one thread's patched pass is inside
    the model (paused there), another thread's plain pass gets the plain logits."""
    import threading

    from lib.model.probes import Patch, patched

    lm = family_lm("llama")
    clean, corrupt = encode_pair(lm, CLEAN, CORRUPT)
    plain = lm.last_logits(torch.tensor([corrupt]))
    inside, release = threading.Event(), threading.Event()
    out: dict = {}

    def pause(module, args):
        if threading.current_thread().name == "patching" and not inside.is_set():
            inside.set()
            assert release.wait(timeout=60)

    def work():
        patch = Patch(0, 1, 2, torch.full((lm.parts.blocks[0].mlp.down_proj.out_features,), 5.0))
        with patched(lm.parts, "resid_pre", [patch]):
            out["patched"] = lm.last_logits(torch.tensor([corrupt]))

    hook = lm.parts.mlp[2].register_forward_pre_hook(pause)  # after layer 1's patch
    worker = threading.Thread(target=work, name="patching")
    try:
        worker.start()
        assert inside.wait(timeout=60)
        during = lm.last_logits(torch.tensor([corrupt]))
    finally:
        release.set()
        worker.join(timeout=60)
        hook.remove()
    torch.testing.assert_close(during, plain, rtol=0, atol=1e-6)
    assert (out["patched"] - plain).abs().max() > 1e-3  # the patch did act in its thread


def test_a_sweep_can_be_stopped_and_reports_progress():
    lm = family_lm("llama")
    clean, corrupt = encode_pair(lm, CLEAN, CORRUPT)
    seen = []
    with pytest.raises(InterruptedError):
        patch_sweep(lm, clean, corrupt, 3, 4, "mlp", batch=4,
                    progress=lambda done, total: seen.append((done, total)),
                    should_stop=lambda: len(seen) >= 2)  # fmt: skip
    assert seen == [(4, 24), (8, 24)]


def test_the_bundled_model_on_a_preset(smollm2):
    """John and Mary: the prompts differ in one token. Entering the first block the stream
    is the embedding, so patching that one position brings all of the difference back,
    and any other position none; the sweep equals the hooked passes (first 3 layers)."""
    clean_text, corrupt_text, good, bad = PRESETS["John and Mary"]
    clean, corrupt = encode_pair(smollm2, clean_text, corrupt_text)
    answer, wrong = answer_id(smollm2, good), answer_id(smollm2, bad)
    sweep = patch_sweep(smollm2, clean, corrupt, answer, wrong, "resid_pre", batch=16,
                        layers=range(3))  # fmt: skip
    assert sweep.recovered.shape == (3, 14) and sweep.clean != sweep.corrupted
    (differs,) = np.flatnonzero(np.array(clean) != np.array(corrupt))
    first = sweep.recovered[0]
    assert first[differs] == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(np.delete(first, differs), 0.0, atol=1e-5)
    want = reference(smollm2, clean, corrupt, answer, wrong, "resid_pre", layers=3)
    np.testing.assert_allclose(sweep.recovered, want, atol=1e-4)
