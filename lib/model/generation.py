"""Token-by-token generation with exact attention capture, greedy or sampled."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from lib.config import Limits
from lib.labels import display_text
from lib.measures import entropy_bits
from lib.model.capture import RECORDER_KWARG, AttentionRecorder
from lib.model.loading import LoadedModel
from lib.model.result import GenerationResult, RunSettings, SamplingSettings

TOP_CANDIDATES = 20
OnToken = Callable[[int, int, str], None]  # (step, total, label)


class PromptError(ValueError):
    """The prompt cannot be used; str(error) is a message for the user."""


def normalise_prompt(text: str) -> str:
    """The prompt as generated and cached: newlines unified, outer whitespace removed."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


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
    if len(text) > limits.max_prompt_chars:
        raise PromptError(
            f"The prompt has {len(text):,} characters; the limit is "
            f"{limits.max_prompt_chars:,}. Shorten it and try again."
        )
    tok = lm.tokenizer
    if chat_template:
        if not lm.has_chat_template:
            raise PromptError("This model has no chat template; switch the template off.")
        rendered = tok.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
        ids = tok(rendered, add_special_tokens=False)["input_ids"]
    else:
        ids = tok(text, add_special_tokens=True, split_special_tokens=True)["input_ids"]
    ids = [int(i) for i in ids]
    if len(ids) > limits.max_prompt_tokens:
        raise PromptError(
            f"The prompt is {len(ids):,} tokens long; the limit is {limits.max_prompt_tokens:,} "
            "tokens. Shorten it and try again."
        )
    bos = tok.bos_token_id
    bos_offset = int(bos is not None and len(ids) > 1 and ids[0] == bos)
    return ids, bos_offset


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
    warped = warpers(None, logits[None])[0]
    return int(torch.multinomial(torch.softmax(warped, -1).cpu(), 1, generator=rng))


def draw(logits: np.ndarray, sampling: SamplingSettings) -> int:
    """The token `generate` would pick from these logits as its first free choice (the
    same seed always gives the same token)."""
    scores = torch.as_tensor(np.asarray(logits, dtype=np.float32))
    rng = torch.Generator().manual_seed(sampling.seed)
    return choose_token(scores, sampling, build_warpers(sampling), rng)


@torch.inference_mode()
def generate(
    lm: LoadedModel,
    prompt: str,
    max_new_tokens: int = 20,
    sampling: SamplingSettings | None = None,
    chat_template: bool = False,
    forced_tokens: Sequence[int] = (),
    on_token: OnToken | None = None,
    limits: Limits | None = None,
) -> GenerationResult:
    """Generate up to `max_new_tokens` tokens, stopping at EOS, capturing attention rows.

    `forced_tokens` replaces the first choices (used to continue a "what if" branch).
    Raises PromptError for prompts the model cannot take.
    """
    limits = limits or Limits.from_env()
    sampling = sampling or SamplingSettings()
    if not 1 <= max_new_tokens <= limits.max_new_tokens:
        raise PromptError(f"Max new tokens must be between 1 and {limits.max_new_tokens}.")
    ids, bos_offset = encode_prompt(lm, prompt, chat_template, limits)
    context = getattr(lm.model.config, "max_position_embeddings", None)
    if context and len(ids) + max_new_tokens > context:
        raise PromptError(f"Prompt plus new tokens exceed the model's context of {context} tokens.")

    from transformers import DynamicCache

    model, eos_ids = lm.model, lm.eos_ids
    warpers = build_warpers(sampling)
    rng = torch.Generator().manual_seed(sampling.seed)
    recorder = AttentionRecorder("last_row")
    cache = DynamicCache(config=model.config)
    step_input = torch.tensor([ids], device=lm.device)
    # Rows go straight into their final array: no list of per-step copies to stack at the end.
    width = len(ids) + max_new_tokens - 1
    attention = np.zeros((max_new_tokens, lm.n_layers, lm.n_heads, width), dtype=np.float32)
    chosen, top_ids, top_probs, chosen_p, entropy = [], [], [], [], []
    stop_reason = "max_tokens"
    for step in range(max_new_tokens):
        out = model(
            input_ids=step_input,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
            **{RECORDER_KWARG: recorder},
        )
        row = recorder.take_rows()
        attention[step, :, :, : row.shape[-1]] = row
        logits = out.logits[0, -1].float()
        probs = torch.softmax(logits, dim=-1)
        if step < len(forced_tokens):
            token = int(forced_tokens[step])
        else:
            token = choose_token(logits, sampling, warpers, rng)
        top = torch.topk(probs, min(TOP_CANDIDATES, probs.shape[-1]))
        top_ids.append(top.indices.cpu().numpy())
        top_probs.append(top.values.cpu().numpy())
        chosen_p.append(float(probs[token]))
        entropy.append(entropy_bits(probs.cpu().numpy()))
        chosen.append(token)
        if on_token is not None:
            on_token(step, max_new_tokens, display_text(lm.tokenizer, token))
        if token in eos_ids:
            stop_reason = "eos"
            break
        step_input = torch.tensor([[token]], device=lm.device)
    del cache, out

    all_ids = ids + chosen
    # EOS is [EOS] only where the model wrote it; the same id inside a chat prompt is a marker.
    texts = [display_text(lm.tokenizer, t) for t in all_ids]
    labels = texts[: len(ids)] + [display_text(lm.tokenizer, t, eos_ids) for t in chosen]
    return GenerationResult(
        model_spec=lm.spec,
        model_name=lm.name,
        prompt=normalise_prompt(prompt),
        token_ids=np.asarray(all_ids, dtype=np.int64),
        labels=tuple(labels),
        texts=tuple(texts),
        prompt_len=len(ids),
        bos_offset=bos_offset,
        attention=_trim(attention, len(chosen), len(all_ids) - 1),
        top_ids=np.stack(top_ids).astype(np.int64),
        top_probs=np.stack(top_probs).astype(np.float32),
        chosen_prob=np.asarray(chosen_p, dtype=np.float32),
        entropy=np.asarray(entropy, dtype=np.float32),
        stop_reason=stop_reason,
        generated_text=lm.tokenizer.decode(chosen, skip_special_tokens=True),
        settings=RunSettings(
            max_new_tokens=max_new_tokens,
            chat_template=chat_template,
            sampling=sampling,
            forced_tokens=tuple(int(t) for t in forced_tokens),
        ),
    )


def _trim(attention: np.ndarray, steps: int, width: int) -> np.ndarray:
    """The filled part; copied only when generation stopped early (EOS), to free the rest."""
    if attention.shape[0] == steps and attention.shape[3] == width:
        return attention
    return np.ascontiguousarray(attention[:steps, :, :, :width])
