"""Many generations decoded together: one forward pass per step for every sequence.

Sequences are left-padded to a common length. The attention mask hides the padding and
each sequence's positions count only its own tokens, so every sequence gets the logits
and attention rows the model computes for it alone (tested to 1e-5). A sequence's tokens
are always the LAST columns of the batch's key/value cache, because every step appends one
column to every sequence; that is how its own rows are cut out of the batch's.

Sequences join between steps: their prompts are read in a pass of their own (grouped so
that no pass holds more than `PREFILL_TOKENS` padded tokens), then their cache is laid
beside the batch's, the shorter padded on the left. Finished or cancelled sequences leave
the cache at once, and columns that only padding still used are cut off.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from lib.config import Limits
from lib.labels import display_text
from lib.measures import entropy_bits
from lib.model.capture import RECORDER_KWARG, AttentionRecorder
from lib.model.errors import PromptError, normalise_prompt
from lib.model.loading import LoadedModel
from lib.model.prefixes import Kept, PrefixCache
from lib.model.result import GenerationResult, RunSettings, SamplingSettings

log = logging.getLogger("tav")

TOP_CANDIDATES = 20
# Padded tokens per prompt-reading pass (a longer prompt goes alone). Passes this size keep
# the cores busy; between them the scheduler writes a token for the runs already started.
PREFILL_TOKENS = 4096
# A fast tokenizer is not safe to call from many threads at once (and 30 sessions tokenising
# together thrash the cores): one at a time; each call takes well under a millisecond.
_TOKENIZE = threading.Lock()


def encode_prompt(
    lm: LoadedModel, prompt: str, chat_template: bool = False, limits: Limits | None = None
) -> tuple[list[int], int]:
    """Token ids of the prompt and the BOS offset (1 if the tokenizer added a BOS, else 0).

    Without the chat template, text that looks like a special token (`<|im_start|>`) is
    split into ordinary pieces: what a user types is text, never a control token.
    """
    limits = limits or Limits.from_env()
    text = normalise_prompt(prompt)
    if not text:
        raise PromptError("The prompt is empty. Type some text for the model to continue.")
    _check_length("prompt", len(text), None, limits)
    with _TOKENIZE:
        ids = _tokenize(lm, text, chat_template)
    _check_length("prompt", None, len(ids), limits)
    return ids, _bos_offset(lm, ids)


def _check_length(what: str, chars: int | None, tokens: int | None, limits: Limits) -> None:
    """The prompt's (or conversation's) characters, then its tokens, within the limits."""
    if chars is not None and chars > limits.max_prompt_chars:
        raise PromptError(
            f"The {what} has {chars:,} characters; the limit is "
            f"{limits.max_prompt_chars:,}. Shorten it and try again."
        )
    if tokens is not None and tokens > limits.max_prompt_tokens:
        raise PromptError(
            f"The {what} is {tokens:,} tokens long; the limit is {limits.max_prompt_tokens:,} "
            "tokens. Shorten it and try again."
        )


def _render_chat(lm: LoadedModel, turns: list[dict]) -> str:
    """The conversation through the model's chat template (a template may refuse one: a
    role it does not take, turns that do not alternate)."""
    if not lm.has_chat_template:
        raise PromptError("This model has no chat template; switch the template off.")
    try:
        return lm.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    except Exception as err:  # noqa: BLE001 - jinja's TemplateError and the template's own
        raise PromptError(f"The model's chat template refused this conversation: {err}") from err


def _bos_offset(lm: LoadedModel, ids: Sequence[int]) -> int:
    bos = lm.tokenizer.bos_token_id
    return int(bos is not None and len(ids) > 1 and ids[0] == bos)


def _check_room(lm: LoadedModel, n_prompt: int, settings: RunSettings, limits: Limits) -> None:
    """The new tokens are allowed, and fit the model's context after the prompt; forced
    choices are tokens the model has."""
    if not 1 <= settings.max_new_tokens <= limits.max_new_tokens:
        raise PromptError(f"Max new tokens must be between 1 and {limits.max_new_tokens}.")
    vocab = lm.vocab_size
    if any(not 0 <= t < vocab for t in settings.forced_tokens):
        raise PromptError(f"A forced token is not one of the model's {vocab:,} tokens.")
    context = getattr(lm.model.config, "max_position_embeddings", None)
    if context and n_prompt + settings.max_new_tokens > context:
        raise PromptError(f"Prompt plus new tokens exceed the model's context of {context} tokens.")


def _tokenize(lm: LoadedModel, text: str, chat_template: bool) -> list[int]:
    tok = lm.tokenizer
    if chat_template:
        rendered = _render_chat(lm, [{"role": "user", "content": text}])
        ids = tok(rendered, add_special_tokens=False)["input_ids"]
    else:
        ids = tok(text, add_special_tokens=True, split_special_tokens=True)["input_ids"]
    return [int(i) for i in ids]


@dataclass(frozen=True)
class Prepared:
    """A checked request, ready to decode: the prompt's ids and how to continue them."""

    prompt: str  # normalised
    ids: tuple[int, ...]
    bos_offset: int
    settings: RunSettings

    @property
    def length(self) -> int:
        """Tokens in the cache at the end: prompt plus every new token."""
        return len(self.ids) + self.settings.max_new_tokens

    def attention_bytes(self, lm: LoadedModel) -> int:
        """What its captured rows will take: steps x layers x heads x keys float32."""
        steps = self.settings.max_new_tokens
        return steps * lm.n_layers * lm.n_heads * (self.length - 1) * 4


def inflight_bytes(lm: LoadedModel, runs: Sequence[Prepared]) -> int:
    """What runs decoded together hold once read: their attention rows, and the key/value
    cache, where left padding makes every run as long as the longest (a pass's temporary
    copies come on top: the limit is set with room for them)."""
    if not runs:
        return 0
    cache = len(runs) * max(r.length for r in runs) * lm.kv_bytes_per_token
    return cache + sum(r.attention_bytes(lm) for r in runs)


def prepare(
    lm: LoadedModel,
    prompt: str,
    settings: RunSettings,
    limits: Limits | None = None,
) -> Prepared:
    """Check and tokenise a request; raises PromptError with a message for the user."""
    limits = limits or Limits.from_env()
    if not 1 <= settings.max_new_tokens <= limits.max_new_tokens:  # before the tokenizer
        raise PromptError(f"Max new tokens must be between 1 and {limits.max_new_tokens}.")
    ids, bos_offset = encode_prompt(lm, prompt, settings.chat_template, limits)
    _check_room(lm, len(ids), settings, limits)
    return Prepared(normalise_prompt(prompt), tuple(ids), bos_offset, settings)


ROLES = ("system", "user", "assistant")


def prepare_chat(
    lm: LoadedModel,
    messages: Sequence[tuple[str, str]],
    settings: RunSettings,
    limits: Limits | None = None,
) -> Prepared:
    """A conversation ((role, content) pairs) through the model's chat template, checked
    as `prepare` checks a prompt. One user message gives exactly `prepare`'s ids with the
    template on, so the app and the generation service share that run."""
    limits = limits or Limits.from_env()
    if not messages:
        raise PromptError("The conversation is empty.")
    if any(role not in ROLES for role, _ in messages):
        raise PromptError(f"A message's role must be one of {', '.join(ROLES)}.")
    if len(messages) == 1 and messages[0][0] == "user":
        return prepare(lm, messages[0][1], replace(settings, chat_template=True), limits)
    turns = [{"role": r, "content": normalise_prompt(c)} for r, c in messages]
    _check_length("conversation", sum(len(t["content"]) for t in turns), None, limits)
    with _TOKENIZE:
        rendered = _render_chat(lm, turns)
        ids = [int(i) for i in lm.tokenizer(rendered, add_special_tokens=False)["input_ids"]]
    _check_length("conversation", None, len(ids), limits)
    settings = replace(settings, chat_template=True)
    _check_room(lm, len(ids), settings, limits)
    return Prepared(rendered, tuple(ids), _bos_offset(lm, ids), settings)


def build_warpers(sampling: SamplingSettings):
    """transformers' own logits warpers, in the order `generate` applies them."""
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        MinPLogitsWarper,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    warpers = LogitsProcessorList()
    if sampling.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(sampling.temperature))
    if sampling.top_k:
        warpers.append(TopKLogitsWarper(top_k=sampling.top_k))
    if sampling.top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=sampling.top_p))
    if sampling.min_p > 0.0:
        warpers.append(MinPLogitsWarper(min_p=sampling.min_p))
    return warpers


def choose_token(
    logits: torch.Tensor, sampling: SamplingSettings, warpers, rng: torch.Generator
) -> int:
    """The next token from one step's logits (V,): the argmax, or a seeded draw after the
    warpers. Generation and the next-token page's preview both choose through here."""
    if not sampling.do_sample:
        return int(torch.argmax(logits))
    probs = torch.softmax(warpers(None, logits[None])[0], -1).cpu()
    if not bool(torch.isfinite(probs).all()):
        # A temperature so small that the logits overflow: the draw's limit is the argmax
        # (and one run's NaN must not fail the batch it is written in).
        return int(torch.argmax(logits))
    return int(torch.multinomial(probs, 1, generator=rng))


class Decoding:
    """One sequence being written: its choices so far and its attention rows.

    `attention` is (max_new_tokens, layers, heads, prompt_len + max_new_tokens - 1): rows
    go straight into their final array, no per-step copies to stack at the end.
    """

    def __init__(self, lm: LoadedModel, prepared: Prepared) -> None:
        self.prepared = prepared
        s = prepared.settings
        self.warpers = build_warpers(s.sampling)
        self.rng = torch.Generator().manual_seed(s.sampling.seed)
        width = len(prepared.ids) + s.max_new_tokens - 1
        self.attention = np.zeros((s.max_new_tokens, lm.n_layers, lm.n_heads, width), np.float32)
        self.chosen: list[int] = []
        self.top_ids: list[np.ndarray] = []
        self.top_probs: list[np.ndarray] = []
        self.chosen_p: list[float] = []
        self.entropy: list[float] = []
        self.stop_reason: str | None = None  # "eos" or "max_tokens" once done
        self._eos = lm.eos_ids

    @property
    def done(self) -> bool:
        return self.stop_reason is not None

    @property
    def cached(self) -> int:
        """Tokens of this sequence in the key/value cache (prompt + tokens fed back)."""
        return len(self.prepared.ids) + max(len(self.chosen) - 1, 0)

    def take(self, row: np.ndarray, logits: torch.Tensor) -> int:
        """Record one step: row (layers, heads, keys of the batch) whose last `cached`
        columns are this sequence's; logits (V,). Returns the chosen token."""
        step = len(self.chosen)
        n = len(self.prepared.ids) + step
        self.attention[step, :, :, :n] = row[:, :, row.shape[-1] - n :]
        probs = torch.softmax(logits, dim=-1)
        s = self.prepared.settings
        if step < len(s.forced_tokens):
            token = int(s.forced_tokens[step])
        else:
            token = choose_token(logits, s.sampling, self.warpers, self.rng)
        top = torch.topk(probs, min(TOP_CANDIDATES, probs.shape[-1]))
        self._record(
            token,
            top.indices.cpu().numpy(),
            top.values.cpu().numpy(),
            float(probs[token]),
            entropy_bits(probs.cpu().numpy()),
        )
        return token

    def resume(self, kept: Kept, steps: int) -> None:
        """Take the first `steps` steps from a kept run with the same prompt whose tokens
        are this run's forced ones: they read the same tokens, so their rows and
        probabilities are the same. Forced steps draw nothing, so the seeded generator is
        where a fresh run's would be."""
        steps = min(steps, self.prepared.settings.max_new_tokens)
        n_prompt = len(self.prepared.ids)
        old = kept.seq
        for step in range(steps):
            n = n_prompt + step
            self.attention[step, :, :, :n] = old.attention[step, :, :, :n]
            self._record(
                int(kept.ids[n]),
                old.top_ids[step],
                old.top_probs[step],
                old.chosen_p[step],
                old.entropy[step],
            )

    def _record(self, token: int, top_ids, top_probs, chosen_p: float, entropy: float) -> None:
        self.top_ids.append(top_ids)
        self.top_probs.append(top_probs)
        self.chosen_p.append(chosen_p)
        self.entropy.append(entropy)
        self.chosen.append(token)
        if token in self._eos:
            self.stop_reason = "eos"
        elif len(self.chosen) == self.prepared.settings.max_new_tokens:
            self.stop_reason = "max_tokens"

    def result(self, lm: LoadedModel) -> GenerationResult:
        """The finished run."""
        p, chosen = self.prepared, self.chosen
        all_ids = list(p.ids) + chosen
        # EOS is [EOS] only where the model wrote it; the same id inside a chat prompt is a marker.
        texts = [display_text(lm.tokenizer, t) for t in all_ids]
        labels = texts[: len(p.ids)] + [display_text(lm.tokenizer, t, lm.eos_ids) for t in chosen]
        return GenerationResult(
            model_spec=lm.spec,
            model_name=lm.name,
            prompt=p.prompt,
            token_ids=np.asarray(all_ids, dtype=np.int64),
            labels=tuple(labels),
            texts=tuple(texts),
            prompt_len=len(p.ids),
            bos_offset=p.bos_offset,
            attention=_trim(self.attention, len(chosen), len(all_ids) - 1),
            top_ids=np.stack(self.top_ids).astype(np.int64),
            top_probs=np.stack(self.top_probs).astype(np.float32),
            chosen_prob=np.asarray(self.chosen_p, dtype=np.float32),
            entropy=np.asarray(self.entropy, dtype=np.float32),
            stop_reason=self.stop_reason or "max_tokens",
            generated_text=lm.tokenizer.decode(chosen, skip_special_tokens=True),
            settings=p.settings,
        )


def _trim(attention: np.ndarray, steps: int, width: int) -> np.ndarray:
    """The filled part; copied only when generation stopped early (EOS), to free the rest."""
    if attention.shape[0] == steps and attention.shape[3] == width:
        return attention
    return np.ascontiguousarray(attention[:steps, :, :, :width])


def one_pass(lengths: Sequence[int], budget: int = PREFILL_TOKENS) -> bool:
    """Whether prompts of these lengths are read in one pass: a single prompt always is,
    several when their padded size (count x longest) stays within `budget`."""
    return len(lengths) <= 1 or len(lengths) * max(lengths) <= budget


def prefill_groups(lengths: Sequence[int], budget: int = PREFILL_TOKENS) -> list[list[int]]:
    """Indices of `lengths` in groups whose padded size (count x longest) stays within
    `budget`, longest first; one prompt longer than the budget forms a group of its own."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and one_pass([lengths[j] for j in groups[-1]] + [lengths[i]], budget):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


class Batch:
    """The sequences being decoded together, and their shared key/value cache.

    With `prefixes`, a finished run's cache is kept there, and a new run that forces the
    tokens of a kept one starts where that one ended (`lib.model.prefixes`)."""

    def __init__(self, lm: LoadedModel, prefixes: PrefixCache | None = None) -> None:
        self.lm = lm
        self.prefixes = prefixes
        self.seqs: list[Decoding] = []
        self.cache = None
        self.forward_passes = 0
        tok = lm.tokenizer
        self._pad = next((t for t in (tok.pad_token_id, *sorted(lm.eos_ids)) if t is not None), 0)

    def __len__(self) -> int:
        return len(self.seqs)

    @torch.inference_mode()
    def add(self, new: Sequence[Decoding]) -> None:
        """Read the new sequences' prompts (their first step) and lay them into the batch;
        a sequence that continues a kept run starts from its cache instead."""
        fresh = [d for d in new if not self._resume(d)]
        for group in prefill_groups([len(d.prepared.ids) for d in fresh]):
            self._prefill([fresh[i] for i in group])
        self._finish([d for d in self.seqs if d.done])

    def _resume(self, d: Decoding) -> bool:
        """Start `d` from a kept run that wrote its first forced tokens, if one is kept."""
        if self.prefixes is None or not d.prepared.settings.forced_tokens:
            return False
        hit = self.prefixes.resume_point(d.prepared.ids, d.prepared.settings.forced_tokens)
        if hit is None:
            return False
        kept, steps = hit
        d.resume(kept, steps)
        if d.done:  # every step it asked for was kept (or the kept run ended there)
            return True
        self._merge(kept.cache_of(d.cached, self.lm.model.config), [d])
        return True

    def _prefill(self, new: list[Decoding]) -> None:
        from transformers import DynamicCache

        width = max(len(d.prepared.ids) for d in new)
        ids = torch.full((len(new), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(new), width), dtype=torch.long)
        for b, d in enumerate(new):
            n = len(d.prepared.ids)
            ids[b, width - n :] = torch.tensor(d.prepared.ids)
            mask[b, width - n :] = 1
        cache = DynamicCache(config=self.lm.model.config)
        rows, logits = self._forward(ids, mask, _positions(mask), cache)
        for b, d in enumerate(new):
            d.take(rows[b], logits[b])
        self._merge(cache, new)

    def step(self) -> None:
        """One token for every sequence in the batch."""
        if not self.seqs:
            return
        with torch.inference_mode():
            length = self.cache.get_seq_length() + 1
            mask = torch.zeros((len(self.seqs), length), dtype=torch.long)
            for b, d in enumerate(self.seqs):
                mask[b, length - d.cached - 1 :] = 1
            ids = torch.tensor([[d.chosen[-1]] for d in self.seqs])
            positions = torch.tensor([[d.cached] for d in self.seqs])
            rows, logits = self._forward(ids, mask, positions, self.cache)
            for b, d in enumerate(self.seqs):
                d.take(rows[b], logits[b])
        self._finish([d for d in self.seqs if d.done])

    def _forward(self, ids, mask, positions, cache) -> tuple[np.ndarray, torch.Tensor]:
        """One pass: (batch, layers, heads, keys) last-row attention, (batch, V) logits."""
        recorder = AttentionRecorder("last_row")
        device = self.lm.device
        out = self.lm.model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
            **{RECORDER_KWARG: recorder},
        )
        self.forward_passes += 1
        return recorder.take_rows(), out.logits[:, -1].float()

    def _merge(self, cache, new: list[Decoding]) -> None:
        if self.cache is None:
            self.cache, self.seqs = cache, list(new)
            return
        length = max(self.cache.get_seq_length(), cache.get_seq_length())
        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([_left_pad(mine.keys, length), _left_pad(theirs.keys, length)])
            mine.values = torch.cat(
                [_left_pad(mine.values, length), _left_pad(theirs.values, length)]
            )
        self.seqs += new

    def _finish(self, done: list[Decoding]) -> None:
        """Keep the finished sequences' caches (if this batch keeps them), then drop them."""
        if self.prefixes is not None and done:
            alone = len(self.seqs) == 1
            for d in done:
                b = self.seqs.index(d)
                layers = self.cache.layers
                try:
                    self.prefixes.keep(
                        d,
                        [_own_columns(layer.keys, b, d.cached, alone) for layer in layers],
                        [_own_columns(layer.values, b, d.cached, alone) for layer in layers],
                    )
                except Exception:  # noqa: BLE001 - a kept cache saves time; the run is done
                    log.exception("keeping a finished run's key/value cache failed")
        self.drop(done)

    def drop(self, gone: Sequence[Decoding]) -> None:
        """Take finished or cancelled sequences out of the batch and its cache."""
        gone_ids = {id(d) for d in gone}
        keep = [b for b, d in enumerate(self.seqs) if id(d) not in gone_ids]
        if len(keep) == len(self.seqs):
            return
        self.seqs = [self.seqs[b] for b in keep]
        if not self.seqs:
            self.cache = None
            return
        index = torch.tensor(keep, device=self.lm.device)
        need = max(d.cached for d in self.seqs)  # columns no sequence left needs are cut
        for layer in self.cache.layers:
            layer.keys = layer.keys[index, :, -need:].contiguous()
            layer.values = layer.values[index, :, -need:].contiguous()


def _own_columns(t: torch.Tensor, b: int, n: int, alone: bool) -> torch.Tensor:
    """Sequence `b`'s cache (its last `n` columns) as (1, heads, n, D): alone in the batch,
    the batch's own tensor (the batch lets go of it now); beside others, a copy (a view
    would keep the whole batch's cache alive)."""
    mine = t[b : b + 1, :, t.shape[-2] - n :]
    return mine if alone else mine.clone()


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Each token's position within its own sequence (padding: 1, as transformers does)."""
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)


def _left_pad(t: torch.Tensor, length: int) -> torch.Tensor:
    """(B, heads, L, D) padded with zeros on the left of the sequence axis to `length`."""
    return F.pad(t, (0, 0, length - t.shape[-2], 0))
