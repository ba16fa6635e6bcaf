"""The student's trained model as a model the lessons read (`lib.train.as_lm`): the same
numbers as the lab's own NanoTransformer, through the app's generation with capture and
every library call the lessons make."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.analysis import ablation as ab
from lib.analysis.head_roles import induction_probe
from lib.analysis.logit_lens import logit_lens
from lib.analysis.residual import activation_norms, supports_sublayers
from lib.analysis.weights import layer_ov_spectra
from lib.model.anatomy import support_note
from lib.model.generation import generate
from lib.train.as_lm import lab_lm
from lib.train.data import SENTENCES, build_dataset
from lib.train.induction import InductionConfig, InductionTrainer
from lib.train.io import LabModel
from lib.train.training import TrainConfig, Trainer


@pytest.fixture(scope="module")
def sentence_lab() -> LabModel:
    trainer = Trainer(build_dataset("\n".join(SENTENCES)), TrainConfig(epochs=30))
    while not trainer.done:
        trainer.step()
    data = trainer.data
    return LabModel(
        "sentences", trainer.model, trainer.cfg, trainer.history(), data.vocab, data.sentences
    )


@pytest.fixture(scope="module")
def induction_lab() -> LabModel:
    cfg = InductionConfig(steps=60, eval_every=20, vocab_size=24, half=8, d_model=32)
    trainer = InductionTrainer(cfg)
    for _ in range(cfg.steps):
        trainer.step()
    return LabModel("induction", trainer.model, cfg, trainer.history())


def lab_attention(nano, ids: list[int]) -> np.ndarray:
    """(L, H, T, T): the lab model's own attention (it keeps its last pass's weights)."""
    with torch.no_grad():
        nano.eval()(torch.tensor([ids]))
    return nano.attention_weights()[:, 0].numpy()


@pytest.mark.parametrize("which", ["sentence_lab", "induction_lab"])
def test_generation_through_the_app_equals_the_lab_model(which, request):
    lab = request.getfixturevalue(which)
    lm = lab_lm(lab)
    prompt = "a cat" if lab.vocab is not None else "3 7 11 5 3 7"
    r = generate(lm, prompt, 3)
    ids = r.token_ids.tolist()
    with torch.no_grad():
        theirs = torch.softmax(lab.model(torch.tensor([ids[:-1]]))[0, -3:], -1).numpy()
    np.testing.assert_allclose(r.chosen_prob, theirs[np.arange(3), ids[-3:]], atol=1e-5)
    att = lab_attention(lab.model, ids[:-1])
    for s in range(r.n_steps):
        q = r.prompt_len - 1 + s
        np.testing.assert_allclose(r.attention[s][..., : q + 1], att[:, :, q, : q + 1], atol=1e-5)
    if lab.vocab is not None:  # the sentence lab's texts open with <START>, as it learnt
        assert r.bos_offset == 1 and ids[0] == lab.vocab.stoi["<START>"]


def test_every_lesson_reads_the_induction_model(induction_lab):
    lm = lab_lm(induction_lab)
    assert supports_sublayers(lm) and "Every lesson works with it." in support_note(lm.model)
    roles = induction_probe(lm, 8)
    assert roles.score("induction").shape == (lm.n_layers, lm.n_heads)
    r = generate(lm, "3 7 11 5 3 7", 2)
    assert r.n_steps == 2 and not lm.eos_ids  # numbered tokens: none ends a run early
    lens = logit_lens(lm, r)
    with torch.no_grad():  # the last readout is the lab model's own prediction
        logits = induction_lab.model(torch.tensor([r.token_ids[: r.prompt_len + 1].tolist()]))
    top = torch.softmax(logits[0, r.prompt_len - 1 :], -1).max(-1).values.numpy()
    np.testing.assert_allclose(lens.final_prob[:, -1], top, atol=1e-5)
    norms = activation_norms(lm, r.token_ids)
    assert np.allclose(norms.mlp, 0)  # attention only: nothing else writes
    from lib.analysis.attribution import logit_attribution

    a = logit_attribution(lm, r, 0)  # no final norm (an identity): the parts as they are
    assert a.scale == 1.0 and a.total == pytest.approx(float(logits[0, r.prompt_len - 1].max()),
                                                       abs=1e-4)  # fmt: skip
    # Prove it on the student's own model: the run's probability with nothing hidden (the
    # lab model's own, by the test above), moved by hiding keys; the largest parts removed.
    from lib.analysis.attribution import check_parts
    from lib.analysis.knockout import knock_out_keys

    q = r.prompt_len - 1
    ko = knock_out_keys(lm, r.token_ids[: q + 1], int(r.token_ids[q + 1]), [1, 2], range(1, q + 1))
    assert ko.before == pytest.approx(float(r.chosen_prob[0]), abs=1e-5) and ko.after != ko.before
    pc = check_parts(lm, r, a)
    assert pc.logit == pytest.approx(float(logits[0, q].max()), abs=1e-4) and len(pc.names) == 3
    assert layer_ov_spectra(lm, 0).shape == (lm.n_heads, lm.parts.head_dim)
    out = ab.ablate(lm, r.token_ids[: r.prompt_len], {(1, 0)}, position=r.prompt_len - 1)
    assert out.kl_bits >= 0


def test_the_post_norm_sentence_model_says_what_it_cannot_show(sentence_lab):
    lm = lab_lm(sentence_lab)
    assert not supports_sublayers(lm)
    assert "except before and after attention" in support_note(lm.model)
    assert lm.parts.ln1_gain(0) is None  # no norm scales what its attention reads
    from lib.analysis.attribution import logit_attribution

    run = generate(lm, "the cat", 2)
    with pytest.raises(ValueError, match="post-norm model"):  # not a sum of parts
        logit_attribution(lm, run, 0)
