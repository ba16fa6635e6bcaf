"""Vector arithmetic on the input embeddings: "king" - "man" + "woman" ≈ ?

Each word is looked up in the model's input embedding matrix (V, d), the rows are added with
their signs, and the vocabulary is ranked by cosine similarity to the sum (word2vec's
analogy test, on a language model's embeddings).

Conventions, stated once:
- A word is tokenized as it appears mid-sentence: with one leading space ("king" -> " king").
  Byte-level BPE (SmolLM2, GPT-2, Llama 3, Qwen) has separate tokens for "king" and " king".
- A word of several tokens is the mean of its tokens' embedding rows.
- Every token of every input word is excluded from the answers (otherwise "king" itself
  usually wins); optionally so are special tokens and the input words' other spellings
  (no leading space, other case) when those are single tokens. Embedding rows past the
  tokenizer's vocabulary (padding some models add) are never candidates.
- Cosine needs every row's norm: `embedding_index` computes them once per model, in chunks
  (no normalised copy of the matrix); a query is then one matrix-vector product.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from lib.measures import ranks
from lib.model.loading import LoadedModel

MAX_TERMS = 6
MAX_WORD_CHARS = 40
MAX_EQUATION_CHARS = 300
TOP_K = 10
MAX_K = 50
NORM_CHUNK = 8192  # rows per chunk when computing row norms: a bounded temporary
_SIGNS = {"+": 1, "-": -1, "\u2212": -1}  # "−" (U+2212) is the minus sign students paste
_SPLIT = re.compile(r"([+\-\u2212])")


class AnalogyInputError(ValueError):
    """The equation cannot be computed; str(error) is a friendly message for the page."""


@dataclass(frozen=True, eq=False)
class EmbeddingIndex:
    """A model's input embedding matrix with its row norms, for cosine queries.

    table       (V, d) float32  the input embedding rows (read-only; a view of the model's
                                weights when it runs in float32 on the CPU, else a copy)
    norms       (V,) float32    the Euclidean norm of every row
    n_tokens    int             ids 0 .. n_tokens-1 are real tokens (rows past are padding)
    special     (S,) int64      the tokenizer's special token ids
    """

    table: np.ndarray
    norms: np.ndarray
    n_tokens: int
    special: np.ndarray

    def __post_init__(self) -> None:
        if self.table.ndim != 2 or self.norms.shape != (self.table.shape[0],):
            raise ValueError("table must be (V, d) and norms (V,)")
        if not 0 < self.n_tokens <= self.table.shape[0] or self.special.ndim != 1:
            raise ValueError("n_tokens must be in 1..V and special (S,)")


@dataclass(frozen=True, eq=False)
class Term:
    """One signed word of the equation and the tokens it became.

    sign    +1 or -1
    word    the word as typed (whitespace trimmed)
    ids     (n,) int64   its token ids (tokenized as " " + word)
    pieces  n strings    their vocabulary entries (byte-level BPE writes the space as "Ġ")
    """

    sign: int
    word: str
    ids: np.ndarray
    pieces: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.sign not in (1, -1) or self.ids.ndim != 1 or len(self.ids) == 0:
            raise ValueError("sign must be +1 or -1 and ids (n,) with n >= 1")
        if len(self.pieces) != len(self.ids):
            raise ValueError("one piece per token id")


@dataclass(frozen=True, eq=False)
class Analogy:
    """The signed sum of T terms and its K nearest tokens by cosine.

    terms        T Terms
    vector_norm  float           the Euclidean norm of the sum
    top_ids      (K,) int64      the nearest allowed tokens, most similar first
    top_cos      (K,) float32    their cosine similarity with the sum, in [-1, 1]
    top_rank     (K,) int64      their rank among the allowed tokens (1 = nearest)
    term_cos     (T,) float32    the cosine of the sum with each term's vector
    excluded     (E,) int64      the token ids that could not be answers (sorted)
    n_candidates int             how many tokens could be answers
    """

    terms: tuple[Term, ...]
    vector_norm: float
    top_ids: np.ndarray
    top_cos: np.ndarray
    top_rank: np.ndarray
    term_cos: np.ndarray
    excluded: np.ndarray
    n_candidates: int

    def __post_init__(self) -> None:
        K, T = self.top_ids.shape[0], len(self.terms)
        if self.top_ids.ndim != 1 or K == 0:
            raise ValueError("top_ids must be (K,) with K >= 1")
        for name in ("top_cos", "top_rank"):
            if getattr(self, name).shape != (K,):
                raise ValueError(f"{name} must be ({K},)")
        if self.term_cos.shape != (T,) or self.excluded.ndim != 1:
            raise ValueError(f"term_cos must be ({T},) and excluded (E,)")


# ---- the equation ------------------------------------------------------------------------


def parse_equation(text: str) -> list[tuple[int, str]]:
    """ "king - man + woman" -> [(1, "king"), (-1, "man"), (1, "woman")].

    + and - (or −) separate the terms, so a word cannot contain them; a missing first sign
    is +. Inner whitespace is collapsed: "New York" is one term of two words.
    """
    text = str(text)
    if not text.strip():
        raise AnalogyInputError("Type an equation, for example: king - man + woman.")
    if len(text) > MAX_EQUATION_CHARS:
        raise AnalogyInputError(
            f"The equation is too long: at most {MAX_EQUATION_CHARS} characters."
        )
    parts = _SPLIT.split(text)  # words at even indices, signs at odd ones
    terms: list[tuple[int, str]] = []
    sign = 1
    for i, part in enumerate(parts):
        if i % 2:
            sign = _SIGNS[part]
            continue
        word = " ".join(part.split())
        if not word:
            if i == 0:  # the equation opens with a sign: "- man + woman"
                continue
            raise AnalogyInputError(
                "A term is empty: put a word between every two signs (e.g. king - man + woman)."
            )
        terms.append((sign, word))
    return check_terms(terms)


def check_terms(terms: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The terms, if there are 1..MAX_TERMS non-blank words of at most MAX_WORD_CHARS."""
    if not terms:
        raise AnalogyInputError("Type at least one word, for example: king - man + woman.")
    if len(terms) > MAX_TERMS:
        raise AnalogyInputError(f"Too many terms ({len(terms)}): at most {MAX_TERMS}.")
    out = []
    for sign, word in terms:
        if sign not in (1, -1):
            raise AnalogyInputError("Each term needs a sign: + or -.")
        word = " ".join(str(word).split())
        if not word:
            raise AnalogyInputError("A term is blank: type a word for every term.")
        if len(word) > MAX_WORD_CHARS:
            raise AnalogyInputError(
                f"A word is too long ({len(word)} characters): at most {MAX_WORD_CHARS}."
            )
        out.append((sign, word))
    return out


def word_ids(tokenizer, word: str) -> list[int]:
    """The word's token ids as it appears mid-sentence: with one leading space."""
    return list(tokenizer.encode(" " + word, add_special_tokens=False))


def make_terms(tokenizer, terms: list[tuple[int, str]]) -> tuple[Term, ...]:
    out = []
    for sign, word in check_terms(terms):
        ids = word_ids(tokenizer, word)
        if not ids:
            raise AnalogyInputError("A word became no tokens at all: try another word.")
        pieces = tuple(str(p) for p in tokenizer.convert_ids_to_tokens(ids))
        out.append(Term(sign, word, np.asarray(ids, dtype=np.int64), pieces))
    return tuple(out)


def variant_ids(tokenizer, words: list[str]) -> set[int]:
    """Single-token spellings of the words without the leading space or in another case
    (" King", "king", " KING" for "king"): the near-copies that would top the list."""
    out: set[int] = set()
    for word in words:
        for form in {word, word.lower(), word.capitalize(), word.upper()}:
            for text in (form, " " + form):
                ids = tokenizer.encode(text, add_special_tokens=False)
                if len(ids) == 1:
                    out.add(int(ids[0]))
    return out


# ---- the arithmetic (pure numpy) ---------------------------------------------------------


def row_norms(table: np.ndarray, chunk: int = NORM_CHUNK) -> np.ndarray:
    """(V, d) -> (V,) float32 row norms, a chunk of rows at a time (no (V, d) temporary)."""
    out = np.empty(table.shape[0], dtype=np.float32)
    for lo in range(0, table.shape[0], chunk):
        block = np.asarray(table[lo : lo + chunk], dtype=np.float64)
        out[lo : lo + chunk] = np.sqrt(np.einsum("ij,ij->i", block, block))
    return out


def term_vector(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """(d,) float64: the mean of the word's token rows (the row itself for one token)."""
    return np.asarray(table[np.asarray(ids, dtype=np.int64)], dtype=np.float64).mean(axis=0)


def cosine(dots: np.ndarray, norms: np.ndarray, vector_norm: float) -> np.ndarray:
    """Cosine from dot products with a vector: dots / (|row| |v|); a zero row scores 0."""
    denom = np.asarray(norms, dtype=np.float64) * float(vector_norm)
    safe = np.where(denom > 0, denom, 1.0)
    return np.where(denom > 0, np.asarray(dots, dtype=np.float64) / safe, 0.0)


def nearest(scores: np.ndarray, allowed: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k allowed entries of `scores` (V,) with the highest score, highest first.

    Returns (ids (k,), ranks (k,)): ranks count allowed entries only (lib.measures).
    """
    masked = np.where(allowed, scores, -np.inf)
    k = min(int(k), int(allowed.sum()))
    top = np.argpartition(-masked, k - 1)[:k]
    top = top[np.argsort(-masked[top], kind="stable")]
    rank = ranks(np.broadcast_to(masked, (k, masked.shape[0])), top)
    return top.astype(np.int64), rank


def solve(
    index: EmbeddingIndex,
    terms: tuple[Term, ...],
    k: int = TOP_K,
    exclude: frozenset[int] | set[int] = frozenset(),
) -> Analogy:
    """The signed sum of the terms' vectors and its k nearest tokens by cosine.

    Every term's tokens, `exclude` and the padding rows are never answers.
    """
    if not terms:
        raise AnalogyInputError("Type at least one word, for example: king - man + woman.")
    vectors = np.stack([term_vector(index.table, t.ids) for t in terms])  # (T, d)
    signs = np.array([t.sign for t in terms], dtype=np.float64)
    vector = signs @ vectors  # (d,)
    size = float(np.linalg.norm(vector))
    scale = max(float(np.linalg.norm(v)) for v in vectors)
    if size <= 1e-6 * max(scale, 1e-30):
        raise AnalogyInputError(
            "The terms cancel out (the sum is the zero vector), so no direction is left to "
            "compare with: change a word or a sign."
        )
    V = index.table.shape[0]
    excluded = {int(i) for t in terms for i in t.ids.tolist()} | {int(i) for i in exclude}
    allowed = np.arange(V) < index.n_tokens
    allowed[[i for i in excluded if 0 <= i < V]] = False
    if not allowed.any():
        raise AnalogyInputError("Every token is excluded: nothing is left to rank.")
    dots = index.table @ vector.astype(index.table.dtype)  # (V,): one matrix-vector product
    cos = cosine(dots, index.norms, size)
    top, rank = nearest(cos, allowed, max(1, min(int(k), MAX_K)))
    term_cos = vectors @ vector / (np.linalg.norm(vectors, axis=1) * size + 1e-30)
    return Analogy(
        terms=terms,
        vector_norm=size,
        top_ids=top,
        top_cos=np.clip(cos[top], -1.0, 1.0).astype(np.float32),
        top_rank=rank,
        term_cos=np.clip(term_cos, -1.0, 1.0).astype(np.float32),
        excluded=np.array(sorted(excluded), dtype=np.int64),
        n_candidates=int(allowed.sum()),
    )


# ---- the model ---------------------------------------------------------------------------


@torch.inference_mode()
def embedding_index(lm: LoadedModel) -> EmbeddingIndex:
    """The model's input embeddings as an EmbeddingIndex (row norms computed here, once)."""
    weight = lm.embedding_matrix()
    table = weight.float().cpu().numpy()  # no copy for a float32 model on the CPU
    table.flags.writeable = False  # a view of the model's weights: never written through
    special = sorted({int(i) for i in (getattr(lm.tokenizer, "all_special_ids", None) or [])})
    return EmbeddingIndex(
        table=table,
        norms=row_norms(table),
        n_tokens=min(len(lm.tokenizer), table.shape[0]),
        special=np.array(special, dtype=np.int64),
    )


def analogy(
    lm: LoadedModel,
    index: EmbeddingIndex,
    terms: list[tuple[int, str]],
    k: int = TOP_K,
    exclude_special: bool = True,
    exclude_variants: bool = True,
) -> Analogy:
    """The equation's nearest tokens in `lm`'s input embeddings (`index` from
    `embedding_index(lm)`); bad input raises AnalogyInputError."""
    parsed = make_terms(lm.tokenizer, terms)
    exclude: set[int] = set()
    if exclude_special:
        exclude |= {int(i) for i in index.special.tolist()}
    if exclude_variants:
        exclude |= variant_ids(lm.tokenizer, [t.word for t in parsed])
    return solve(index, parsed, k, exclude)
