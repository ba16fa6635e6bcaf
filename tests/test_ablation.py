"""Head ablation: exact against zeroed weights on the tiny model, harmless to other
threads, the induction probe on SmolLM2, and the page under AppTest."""

from __future__ import annotations

import copy
import dataclasses
import threading

import numpy as np
import pytest
import torch

from lib.analysis import ablation as ab
from lib.analysis import head_roles as hr
from lib.model.generation import generate
from lib.viz import ablation as vz
from tests.apphelpers import assert_ok
from tests.tiny import tiny_lm

IDS = np.array([1, 3, 4, 5, 6, 7, 3, 4, 5, 8, 9, 10], dtype=np.int64)  # "the old wizard ..."


@pytest.fixture(scope="module")
def lm():
    return tiny_lm()


def o_projs(model) -> list[torch.nn.Linear]:
    return [layer.self_attn.o_proj for layer in model.model.layers]


def head_dim(lm) -> int:
    return lm.model.config.hidden_size // lm.model.config.num_attention_heads


def with_zeroed_columns(lm, heads):
    """A deep copy of `lm` whose o_proj weight columns of `heads` are zero (the manual way)."""
    model = copy.deepcopy(lm.model)
    d = head_dim(lm)
    with torch.no_grad():
        for layer, head in heads:
            o_projs(model)[layer].weight[:, head * d : (head + 1) * d] = 0.0
    return dataclasses.replace(lm, model=model)


def logits(model, ids) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids)[None], use_cache=False).logits[0]


def probs_at(model, ids, position) -> np.ndarray:
    return torch.softmax(logits(model, ids[: position + 1])[-1].double(), -1).numpy()


# ---- (a) the tiny model -------------------------------------------------------------------


def test_a_head_that_adds_nothing_changes_nothing(lm):
    silent = with_zeroed_columns(lm, [(1, 2)])
    out = ab.ablate(silent, IDS, {(1, 2)}, position=8, target=5, top_k=5)
    assert np.array_equal(out.before_ids, out.after_ids)
    assert np.array_equal(out.before_probs, out.after_probs)
    assert np.array_equal(out.shown_before, out.shown_after)
    assert out.target_before == out.target_after
    assert out.kl_bits == 0.0


def test_ablation_equals_zeroing_the_o_proj_columns(lm):
    heads = {(0, 1), (2, 3), (2, 0)}
    vocab = lm.model.config.vocab_size
    out = ab.ablate(lm, IDS, heads, position=9, target=4, top_k=vocab)
    p = probs_at(lm.model, IDS, 9)
    q = probs_at(with_zeroed_columns(lm, heads).model, IDS, 9)
    assert out.heads == ((0, 1), (2, 0), (2, 3))
    assert out.shown_ids.shape == (vocab,)  # top_k = V: every token is shown
    np.testing.assert_allclose(out.shown_before, p[out.shown_ids], atol=1e-5)
    np.testing.assert_allclose(out.shown_after, q[out.shown_ids], atol=1e-5)
    assert out.after_ids[0] == int(np.argmax(q))
    assert out.target_after == pytest.approx(q[4], abs=1e-5)
    assert out.target_rank_after == 1 + int((q > q[4]).sum())
    assert abs(q - p).max() > 1e-3  # the heads mattered, so the comparison means something
    kl = float(np.sum(p * np.log2(p / q)))
    assert out.kl_bits == pytest.approx(kl, abs=1e-5)
    # The context manager on a whole-sequence forward: every position agrees.
    with ab.zero_heads(lm, heads):
        ablated = logits(lm.model, IDS)
    torch.testing.assert_close(ablated, logits(with_zeroed_columns(lm, heads).model, IDS))


def test_ablating_every_head_equals_zero_o_proj_weights(lm):
    every = {(layer, h) for layer in range(lm.n_layers) for h in range(lm.n_heads)}
    zeroed = copy.deepcopy(lm.model)
    with torch.no_grad():
        for o in o_projs(zeroed):
            o.weight.zero_()
    with ab.zero_heads(lm, every):
        ablated = logits(lm.model, IDS)
    torch.testing.assert_close(ablated, logits(zeroed, IDS), atol=1e-5, rtol=0)


def test_hooks_are_gone_afterwards_even_after_an_error(lm):
    plain = logits(lm.model, IDS)
    ab.ablate(lm, IDS, {(0, 0), (1, 3)}, position=5)
    with pytest.raises(RuntimeError, match="inside"), ab.zero_heads(lm, {(2, 1)}):
        assert all(o._forward_pre_hooks for o in o_projs(lm.model)[2:])
        raise RuntimeError("inside")
    assert not any(o._forward_pre_hooks for o in o_projs(lm.model))
    assert torch.equal(logits(lm.model, IDS), plain)


def test_a_concurrent_plain_forward_in_another_thread_is_unaffected(lm):
    heads = {(0, 0), (1, 1), (2, 2)}
    plain = logits(lm.model, IDS)
    expected = logits(with_zeroed_columns(lm, heads).model, IDS)
    inside, release = threading.Event(), threading.Event()
    worker_out: dict[str, object] = {}

    def pause_in_worker(module, args):  # registered first: runs before the ablation's hook
        if threading.current_thread().name == "ablating" and not inside.is_set():
            inside.set()
            assert release.wait(timeout=60)

    def work():
        try:
            with ab.zero_heads(lm, heads):
                worker_out["logits"] = logits(lm.model, IDS)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            worker_out["error"] = e

    pause = o_projs(lm.model)[1].register_forward_pre_hook(pause_in_worker)
    worker = threading.Thread(target=work, name="ablating")
    try:
        worker.start()
        assert inside.wait(timeout=60)  # the worker is mid-forward, its hooks in place
        assert len(o_projs(lm.model)[1]._forward_pre_hooks) == 2
        during = logits(lm.model, IDS)  # this thread's plain forward meets the live hooks
    finally:
        release.set()
        worker.join(timeout=60)
        pause.remove()
    assert "error" not in worker_out, worker_out.get("error")
    assert torch.equal(during, plain)
    torch.testing.assert_close(worker_out["logits"], expected)


def test_the_run_step_helper_reads_the_step_position_and_token(lm):
    r = generate(lm, "the old wizard", max_new_tokens=4, forced_tokens=[7, 8, 9, 10])
    out = ab.ablate_step(lm, r, 2, {(1, 0)}, top_k=3)
    assert out.position == r.prompt_len - 1 + 2
    assert out.target == int(r.generated_ids[2]) == 9
    # generation's own probability of that token (KV cache, float32) agrees
    assert out.target_before == pytest.approx(float(r.chosen_prob[2]), abs=1e-5)
    with pytest.raises(ValueError, match="outside the run's steps"):
        ab.ablate_step(lm, r, r.n_steps, {(1, 0)})


@pytest.mark.parametrize(
    ("heads", "message"),
    [
        ({(3, 0)}, "layer 3 does not exist: this model has layers 0 to 2"),
        ({(0, 4)}, "head 4 does not exist: each layer has heads 0 to 3"),
        ({(0, -1)}, "head -1 does not exist"),
        ({(0.5, 1)}, "whole numbers"),
        ([(1, 2, 3)], "a head is a \\(layer, head\\) pair"),
    ],
)
def test_invalid_heads_get_a_clear_message(lm, heads, message):
    with pytest.raises(ValueError, match=message):
        ab.ablate(lm, IDS, heads, position=3)
    assert not any(o._forward_pre_hooks for o in o_projs(lm.model))


def test_position_out_of_range(lm):
    with pytest.raises(ValueError, match="outside the 12 tokens"):
        ab.ablate(lm, IDS, {(0, 0)}, position=12)


def test_frame_labels_and_head_labels(lm):
    out = ab.ablate(lm, IDS, {(2, 1)}, position=6, target=5, top_k=4)
    df = vz.ablation_frame(out, lambda i: "same" if i in (3, 4) else f"w{i}")
    assert len(df) == 2 * out.shown_ids.size
    assert df.groupby("token")["id"].nunique().max() == 1  # look-alike tokens kept apart
    target = df[df["written by the run"]]
    assert set(target["id"]) <= {5}
    assert all(
        t.endswith(vz.RUN_MARK) == (i == 5) for t, i in zip(df["token"], df["id"], strict=True)
    )
    before = df[df["model"] == vz.BEFORE].sort_values("order")
    np.testing.assert_allclose(before["probability"], out.shown_before, atol=1e-7)
    assert vz.head_label((18, 6)) == "L18 H6"
    assert vz.parse_head(" L18 H6 ") == (18, 6)
    assert vz.parse_head("L18") is None
    assert vz.heads_text(((1, 2), (3, 4), (5, 6))) == "L1 H2, L3 H4 and L5 H6"
    assert "changes" in vz.step_caption(out, 0) or "stays" in vz.step_caption(out, 0)


# ---- (b) SmolLM2: the induction heads copy ------------------------------------------------


def test_switching_off_the_best_induction_head_raises_the_second_repeat_loss(smollm2):
    n = 30  # shorter than the page's 50-token probe: the same heads, a faster test
    roles = hr.induction_probe(smollm2, n, 0)
    score = roles.score("induction")
    best = tuple(int(i) for i in np.unravel_index(int(np.argmax(score)), score.shape))
    layer = best[0]  # the control: the same layer's weakest induction head
    control = (layer, int(np.argmin(score[layer])))
    assert score[best] > 0.5 and score[control] < 0.05
    hit = ab.probe_ablation(smollm2, {best}, n, 0, before=roles.loss)
    ctrl = ab.probe_ablation(smollm2, {control}, n, 0)  # its own plain pass
    np.testing.assert_allclose(ctrl.loss_before, roles.loss, atol=1e-4)  # same probe, same loss
    assert ab.repeat_means(roles.loss, roles.prefix_len, n) == roles.repeat_losses()
    plain = hit.losses(False)[1]
    rise_best = hit.losses(True)[1] - plain
    rise_ctrl = ctrl.losses(True)[1] - plain
    print(
        f"second-repeat loss {plain:.2f} nats; {best} off: {rise_best:+.2f}, {control} off: "
        f"{rise_ctrl:+.2f}"
    )
    assert rise_best > 0.5  # L18 H6: 4.26 -> 5.69 nats here (3.00 -> 4.80 with n = 50)
    assert abs(rise_ctrl) < rise_best / 4
    # the first repeat has nothing to copy: the head barely matters there
    assert abs(hit.losses(True)[0] - hit.losses(False)[0]) < rise_best / 4


# ---- (c) the page ---------------------------------------------------------------------------


def test_ablation_page_after_a_run(app):
    app.slider(key="max_tokens__w").set_value(4)
    next(b for b in app.button if b.label == "Generate").click().run()
    assert_ok(app)
    app.session_state["layer"], app.session_state["head"] = 18, 6  # as Head roles hands over
    app.switch_page("lessons/ablation.py").run()
    assert_ok(app)
    assert app.title[0].value == "Ablate a head"
    picker = app.multiselect(key="ab_heads__w")
    assert picker.value == [(18, 6)]  # preselected from the handed-over head
    picker.set_value([(18, 6), (17, 4)]).run()
    assert_ok(app)
    assert app.session_state["ab_heads"] == [(18, 6), (17, 4)]
    charts = app.get("vega_lite_chart")
    assert len(charts) == 1 and "yOffset" in charts[0].proto.spec
    labels = [m.label for m in app.metric]
    assert "Second repeat, heads switched off" in labels
    assert "KL divergence" in labels
