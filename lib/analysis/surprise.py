"""How surprised the model is by each prompt token, before it writes anything.

One forward pass over the prompt; position i's next-token distribution gives the
probability of token i + 1. Only those P numbers are kept: the logits are unembedded a
chunk of positions at a time, so a 2,048-token prompt never holds T x vocabulary floats.
"""

from __future__ import annotations

import numpy as np
import torch

from lib.model.loading import LoadedModel

CHUNK = 256  # positions unembedded at once: 256 x 49,152 float32 = 50 MB


@torch.inference_mode()
def next_token_probs(lm: LoadedModel, token_ids: np.ndarray) -> np.ndarray:
    """(T,) float32: entry i is the probability the model gave token i from tokens 0..i-1;
    entry 0 is NaN (nothing comes before it)."""
    ids = lm.batch(np.asarray(token_ids))
    hidden = lm.model.base_model(input_ids=ids, use_cache=False).last_hidden_state[0]
    unembed = lm.model.get_output_embeddings()
    out = np.full(ids.shape[1], np.nan, dtype=np.float32)
    targets = ids[0, 1:]
    for lo in range(0, targets.shape[0], CHUNK):
        logits = unembed(hidden[lo : lo + CHUNK]).float()
        logp = torch.log_softmax(logits, dim=-1)
        picked = logp.gather(1, targets[lo : lo + CHUNK, None])[:, 0]
        out[lo + 1 : lo + 1 + picked.shape[0]] = picked.exp().cpu().numpy()
    return out
