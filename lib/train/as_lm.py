"""The lab's model as a model the lessons read: the same weights, in transformers' GPT-2 parts.

A `NanoTransformer` is GPT-2's anatomy with three differences: fixed sinusoidal positions
(GPT-2 learns its own), norms after each residual sum instead of before each sub-layer, and
a head with a bias that is not the embedding matrix. So the lab's weights go into a
`GPT2LMHeadModel` whose position table holds the sinusoids, whose blocks add and then
normalise (`NanoBlock`), and whose head is the lab's own; its attention is GPT-2's module,
which runs through transformers' attention registry, so the app's exact capture, key/value
cache, batching and every lesson work on it unchanged. `lab_lm` checks that the copy
computes what the lab's model computes (logits to 1e-4) before handing it over.

Its tokenizer is a word-level one over the lab's vocabulary: the sentence lab's words (with
<START> as the first token, <END> as the end), or the induction lab's numbered tokens
"0", "1", ... (which a student types separated by spaces).
"""

from __future__ import annotations

import uuid

import numpy as np
import torch
from torch import nn

from lib.config import LAB_PREFIX
from lib.model.loading import LoadedModel
from lib.train.data import END, PAD, START
from lib.train.io import LabModel
from lib.train.model import NanoTransformer


class ZeroMLP(nn.Module):
    """The attention-only model's missing MLP: it writes nothing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def nano_block_class():
    from transformers.models.gpt2.modeling_gpt2 import GPT2Block

    class NanoBlock(GPT2Block):
        """Add, then normalise (post-norm), as the lab's `TransformerBlock` does."""

        attention_only = False

        def forward(
            self,
            hidden_states,
            past_key_values=None,
            attention_mask=None,
            encoder_hidden_states=None,
            encoder_attention_mask=None,
            use_cache=False,
            **kwargs,
        ):
            attn_output, _ = self.attn(
                hidden_states,
                past_key_values=past_key_values,
                attention_mask=attention_mask,
                use_cache=use_cache,
                **kwargs,
            )
            if self.attention_only:  # its MLP writes zeros: read as one, it adds nothing
                return hidden_states + attn_output + self.mlp(hidden_states)
            x = self.ln_1(hidden_states + attn_output)
            return self.ln_2(x + self.mlp(x))

    return NanoBlock


def to_gpt2(nano: NanoTransformer, attn_implementation: str, words: bool) -> nn.Module:
    """A GPT2LMHeadModel computing what `nano` computes, with its weights copied; with
    `words` (the sentence lab) ids 0, 1, 2 are <PAD>, <START> and <END>, else (the
    induction lab's numbered tokens) no id is special and nothing ends a run early."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = nano.cfg
    config = GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.max_len,
        n_embd=cfg.d_model,
        n_layer=cfg.n_layers,
        n_head=cfg.n_heads,
        n_inner=4 * cfg.d_model,
        activation_function="gelu",  # the lab's nn.GELU(): exact, not GPT-2's tanh form
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,  # nn.LayerNorm's
        tie_word_embeddings=False,
        bos_token_id=1 if words else None,
        eos_token_id=2 if words else None,
        pad_token_id=0 if words else None,
    )
    config.post_norm = not cfg.attention_only  # lib.model.anatomy: the sums are not plain
    config._attn_implementation = attn_implementation
    model = GPT2LMHeadModel(config).eval()
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.bos_token_id = config.bos_token_id
    block_class = nano_block_class()
    src = nano.state_dict()
    with torch.no_grad():
        t = model.transformer
        t.wte.weight.copy_(src["embedding.weight"])
        t.wpe.weight.copy_(nano.positions.pe[: cfg.max_len])
        t.ln_f = nn.Identity()  # the last block's norm is the last norm
        for i, block in enumerate(t.h):
            block.__class__ = block_class
            block.attention_only = cfg.attention_only
            p = f"blocks.{i}."
            block.attn.c_attn.weight.copy_(src[p + "attention.qkv.weight"].T)  # Conv1D: (in, out)
            block.attn.c_attn.bias.copy_(src[p + "attention.qkv.bias"])
            block.attn.c_proj.weight.copy_(src[p + "attention.out.weight"].T)
            block.attn.c_proj.bias.copy_(src[p + "attention.out.bias"])
            if cfg.attention_only:
                block.ln_1, block.ln_2, block.mlp = nn.Identity(), nn.Identity(), ZeroMLP()
                continue
            for ours, theirs in (("ln_1", "norm1"), ("ln_2", "norm2")):
                getattr(block, ours).weight.copy_(src[p + theirs + ".weight"])
                getattr(block, ours).bias.copy_(src[p + theirs + ".bias"])
            block.mlp.c_fc.weight.copy_(src[p + "feed_forward.0.weight"].T)
            block.mlp.c_fc.bias.copy_(src[p + "feed_forward.0.bias"])
            block.mlp.c_proj.weight.copy_(src[p + "feed_forward.2.weight"].T)
            block.mlp.c_proj.bias.copy_(src[p + "feed_forward.2.bias"])
        model.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=True)
        model.lm_head.weight.copy_(src["head.weight"])
        model.lm_head.bias.copy_(src["head.bias"])
    return model.eval()


def words(lab: LabModel) -> list[str]:
    """The lab's vocabulary as words, by id."""
    if lab.vocab is not None:
        return list(lab.vocab.itos)
    return [str(i) for i in range(lab.model.cfg.vocab_size)]


def word_tokenizer(vocabulary: list[str], with_specials: bool):
    """A word-level tokenizer over `vocabulary` (split on spaces); the sentence lab's
    <START> opens every text, as it opened every sentence the model learnt from."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(vocabulary)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=PAD if with_specials else vocabulary[0]))
    # Words as the lab reads them (lib.train.data.words): lowercased, punctuation dropped.
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[^\w'’-]+|_"), behavior="removed")
    if not with_specials:
        return PreTrainedTokenizerFast(tokenizer_object=tok)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{START} $A", special_tokens=[(START, vocab[START])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=START, eos_token=END, pad_token=PAD, unk_token=PAD
    )


def sample_request(lab: LabModel) -> tuple[str, int]:
    """A first run for the trained model: (prompt, new tokens). The sentence lab: the first
    two words of its first sentence. The induction lab: a random half and the start of its
    repeat, so the rest of the repeat is what an induction head can write."""
    if lab.sentences:
        prompt = lab.sentences[0][:2]
        room = lab.model.cfg.max_len - 1 - len(prompt)  # its context, after <START>
        return " ".join(prompt), max(1, min(8, room))
    half = min(lab.config.half, lab.model.cfg.max_len // 2)
    rng = np.random.default_rng(0)
    seq = rng.choice(lab.model.cfg.vocab_size, size=half, replace=False).tolist()
    return " ".join(str(t) for t in seq + seq[:3]), half - 3


def lab_lm(lab: LabModel) -> LoadedModel:
    """The trained lab model as a LoadedModel every lesson can read (a fresh spec each time:
    a student's model is theirs alone)."""
    from lib.model.capture import CAPTURE_IMPL, ensure_registered

    ensure_registered()
    model = to_gpt2(lab.model, CAPTURE_IMPL, lab.vocab is not None)
    probe = torch.arange(min(8, lab.model.cfg.max_len))[None] % lab.model.cfg.vocab_size
    with torch.no_grad():
        theirs = lab.model.eval()(probe)
        ours = model(probe).logits
    if not torch.allclose(ours, theirs, atol=1e-4):
        raise ValueError("The copy of the lab's model does not compute what it computes.")
    cfg = lab.model.cfg
    name = "Your sentence model" if lab.lab == "sentences" else "Your induction model"
    return LoadedModel(
        spec=f"{LAB_PREFIX}{uuid.uuid4().hex}",
        name=f"{name} ({cfg.n_layers} layers × {cfg.n_heads} heads)",
        source="lab",
        model=model,
        tokenizer=word_tokenizer(words(lab), lab.vocab is not None),
        device=torch.device("cpu"),
        dtype=torch.float32,
        n_params=sum(p.numel() for p in lab.model.parameters()),
    )
