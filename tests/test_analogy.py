"""Vector arithmetic: planted analogies on hand-built embeddings, the bundled
SmolLM2 checked against an independent numpy cosine, and the page under AppTest."""

from __future__ import annotations

import numpy as np
import pytest

from lib.analysis import analogy as an
from lib.analysis.analogy import AnalogyInputError, EmbeddingIndex, Term
from tests.apphelpers import assert_ok

# ---- hand-built embeddings with planted structure ----------------------------------------

# Axes: royal, male, female, fruit, then 4 noise dimensions.
_PLANTED = {
    "king": [1, 1, 0, 0],
    "queen": [1, 0, 1, 0],
    "man": [0, 1, 0, 0],
    "woman": [0, 0, 1, 0],
    "princess": [0.8, 0, 0.7, 0.3],
    "prince": [0.8, 0.7, 0, 0.3],
    "apple": [0, 0, 0, 1],
    "pear": [0, 0.1, 0, 1],
}
WORDS = list(_PLANTED)
ID = {w: i for i, w in enumerate(WORDS)}


def planted_table(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.array([_PLANTED[w] for w in WORDS], dtype=np.float64)
    noise = 0.05 * rng.standard_normal((len(WORDS), 4))
    return np.hstack([base, noise]).astype(np.float32)  # (8, 8)


def index_of(table: np.ndarray, n_tokens: int | None = None) -> EmbeddingIndex:
    return EmbeddingIndex(
        table=table,
        norms=an.row_norms(table),
        n_tokens=table.shape[0] if n_tokens is None else n_tokens,
        special=np.zeros(0, dtype=np.int64),
    )


def term(sign: int, word: str, ids: list[int]) -> Term:
    return Term(sign, word, np.array(ids, dtype=np.int64), tuple(word for _ in ids))


def manual_cosine(table: np.ndarray, v: np.ndarray) -> np.ndarray:
    t = table.astype(np.float64)
    return t @ v / (np.linalg.norm(t, axis=1) * np.linalg.norm(v))


def test_planted_analogy_answers_queen_and_excludes_the_inputs():
    table = planted_table()
    terms = (term(1, "king", [ID["king"]]), term(-1, "man", [ID["man"]]))
    terms += (term(1, "woman", [ID["woman"]]),)
    result = an.solve(index_of(table), terms, k=4)
    assert WORDS[int(result.top_ids[0])] == "queen"
    assert not {ID["king"], ID["man"], ID["woman"]} & set(result.top_ids.tolist())
    assert result.top_rank.tolist() == [1, 2, 3, 4]
    v = table[ID["king"]].astype(np.float64) - table[ID["man"]] + table[ID["woman"]]
    expected = manual_cosine(table, v)
    np.testing.assert_allclose(result.top_cos, expected[result.top_ids], atol=1e-6)
    assert result.top_cos[0] > 0.95 and np.all(np.diff(result.top_cos) <= 0)
    assert result.vector_norm == pytest.approx(np.linalg.norm(v), rel=1e-6)
    np.testing.assert_allclose(
        result.term_cos, expected[[ID["king"], ID["man"], ID["woman"]]], atol=1e-6
    )
    assert result.n_candidates == len(WORDS) - 3
    assert result.excluded.tolist() == sorted([ID["king"], ID["man"], ID["woman"]])


def test_one_word_gives_its_nearest_other_token():
    """One word alone: its own token (cosine 1) is excluded, so the answer is its nearest
    other row (planted: prince)."""
    table = planted_table()
    terms = (term(1, "king", [ID["king"]]),)
    result = an.solve(index_of(table), terms, k=2)
    assert ID["king"] not in result.top_ids.tolist()
    assert WORDS[int(result.top_ids[0])] == "prince"  # king's nearest other row


def test_a_multi_token_word_is_the_mean_of_its_tokens():
    # rows: a, b (the two tokens of one word), e, then two candidates: mean(a, b) - e
    # = (1, 1, -1) points at c_mean; sum(a, b) - e = (2, 2, -1) would point at c_sum.
    table = np.array(
        [
            [2, 0, 0],
            [0, 2, 0],
            [0, 0, 1],
            [1, 1, -1],  # c_mean
            [2, 2, -1],  # c_sum
        ],
        dtype=np.float32,
    )
    terms = (term(1, "ab", [0, 1]), term(-1, "e", [2]))
    result = an.solve(index_of(table), terms, k=2)
    assert result.top_ids.tolist() == [3, 4]
    assert result.top_cos[0] == pytest.approx(1.0, abs=1e-6)
    assert result.vector_norm == pytest.approx(np.sqrt(3), rel=1e-6)
    np.testing.assert_allclose(an.term_vector(table, np.array([0, 1])), [1, 1, 0])


def test_row_norms_in_chunks_and_padding_rows_are_never_answers():
    rng = np.random.default_rng(1)
    table = rng.standard_normal((11, 5)).astype(np.float32)
    np.testing.assert_allclose(
        an.row_norms(table, chunk=3), np.linalg.norm(table.astype(np.float64), axis=1), rtol=1e-6
    )
    table[10] = table[0] * 5  # a padding row pointing exactly where the query points
    result = an.solve(index_of(table, n_tokens=10), (term(1, "x", [0]),), k=9)
    assert 10 not in result.top_ids.tolist() and result.n_candidates == 9
    assert len(result.top_ids) == 9  # k is capped at the candidates


def test_extra_exclusions_and_zero_rows():
    table = planted_table()
    table[ID["pear"]] = 0.0  # a zero row has no direction: cosine 0, not NaN
    terms = (term(1, "king", [ID["king"]]), term(-1, "man", [ID["man"]]))
    terms += (term(1, "woman", [ID["woman"]]),)
    result = an.solve(index_of(table), terms, k=5, exclude={ID["queen"]})
    assert ID["queen"] not in result.top_ids.tolist()
    assert WORDS[int(result.top_ids[0])] == "princess"
    assert np.all(np.isfinite(result.top_cos))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("king - man + woman", [(1, "king"), (-1, "man"), (1, "woman")]),
        ("king−man+woman", [(1, "king"), (-1, "man"), (1, "woman")]),  # U+2212 minus
        ("- man +  New   York ", [(-1, "man"), (1, "New York")]),
        ("<script> + **bold**", [(1, "<script>"), (1, "**bold**")]),
    ],
)
def test_parse_equation(text, expected):
    assert an.parse_equation(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Type an equation"),
        ("   \t ", "Type an equation"),
        ("king - + woman", "A term is empty"),
        ("king -", "A term is empty"),
        ("+", "A term is empty"),
        ("a + b + c + d + e + f + g", "Too many terms (7)"),
        ("x" * 41, "too long (41 characters)"),
        ("a" * 400, "equation is too long"),
    ],
)
def test_bad_equations_raise_a_friendly_error(text, message):
    with pytest.raises(AnalogyInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        an.parse_equation(text)
    assert issubclass(AnalogyInputError, ValueError)


def test_bad_terms_and_cancelling_terms():
    with pytest.raises(AnalogyInputError, match="blank"):
        an.check_terms([(1, "king"), (-1, "  ")])
    with pytest.raises(AnalogyInputError, match="at least one"):
        an.check_terms([])
    table = planted_table()
    cancel = (term(1, "king", [ID["king"]]), term(-1, "king", [ID["king"]]))
    with pytest.raises(AnalogyInputError, match="cancel out"):
        an.solve(index_of(table), cancel)


def test_result_shapes_are_checked():
    with pytest.raises(ValueError):
        EmbeddingIndex(np.zeros((3, 2)), np.zeros(2), 3, np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError):
        Term(2, "x", np.array([1]), ("x",))
    with pytest.raises(ValueError):
        Term(1, "x", np.array([1, 2]), ("x",))


# ---- the bundled SmolLM2 -----------------------------------------------------------------


@pytest.fixture(scope="module")
def index(smollm2):
    return an.embedding_index(smollm2)


def test_smollm2_king_man_woman_against_numpy(smollm2, index):
    lm = smollm2
    result = an.analogy(lm, index, an.parse_equation("king - man + woman"), k=5)
    W = lm.model.get_input_embeddings().weight.detach().double().numpy()
    ids = [lm.tokenizer.encode(" " + w, add_special_tokens=False) for w in ("king", "man", "woman")]
    assert all(len(i) == 1 for i in ids)  # one token each in SmolLM2's vocabulary
    king, man, woman = (i[0] for i in ids)
    v = W[king] - W[man] + W[woman]
    cos = W @ v / (np.linalg.norm(W, axis=1) * np.linalg.norm(v))
    assert not {king, man, woman} & set(result.top_ids.tolist())
    assert np.all(result.top_cos <= 1) and np.all(result.top_cos >= -1)
    np.testing.assert_allclose(result.top_cos, cos[result.top_ids], atol=1e-5)
    np.testing.assert_allclose(result.term_cos, [cos[king], cos[man], cos[woman]], atol=1e-5)
    # The independent ranking: every non-excluded token, by cosine.
    allowed = np.ones(len(cos), dtype=bool)
    allowed[result.excluded] = False
    best = np.flatnonzero(allowed)[np.argsort(-cos[allowed], kind="stable")[:5]]
    assert result.top_ids.tolist() == best.tolist()
    assert lm.tokenizer.decode([int(result.top_ids[0])]) == " queen"  # seen: 0.716
    # The table is the model's own memory (no copy), and cannot be written through.
    assert np.shares_memory(index.table, lm.model.get_input_embeddings().weight.detach().numpy())
    assert not index.table.flags.writeable


def test_smollm2_variants_and_multi_token_words(smollm2, index):
    lm = smollm2
    tok = lm.tokenizer
    on = an.analogy(lm, index, an.parse_equation("Paris - France + Italy"), k=10)
    off = an.analogy(
        lm, index, an.parse_equation("Paris - France + Italy"), k=10, exclude_variants=False
    )
    variants = {tok.encode(s, add_special_tokens=False)[0] for s in ("Italy", "Paris")}
    assert variants <= set(off.top_ids.tolist())  # without the option they crowd the top
    assert not variants & set(on.top_ids.tolist())
    special = set(tok.all_special_ids)
    assert special <= set(on.excluded.tolist())
    # "ukulele" is three tokens: its vector is their mean embedding.
    r = an.analogy(lm, index, [(1, "ukulele")], k=3)
    (t,) = r.terms
    assert t.pieces == ("Ġuk", "ule", "le") and len(t.ids) == 3
    W = lm.model.get_input_embeddings().weight.detach().double().numpy()
    v = W[t.ids].mean(axis=0)
    cos = W[r.top_ids] @ v / (np.linalg.norm(W[r.top_ids], axis=1) * np.linalg.norm(v))
    np.testing.assert_allclose(r.top_cos, cos, atol=1e-5)
    assert not set(t.ids.tolist()) & set(r.top_ids.tolist())


# ---- the page ------------------------------------------------------------------------------


def test_page_computes_an_equation_and_draws_the_chart(app):
    at = app.switch_page("lessons/analogy.py").run()
    assert_ok(at)
    assert at.title[0].value == "Vector arithmetic"
    at.text_input(key="analogy_equation__w").set_value("walked - walk + swim").run()
    assert_ok(at)
    assert len(at.get("vega_lite_chart")) == 1
    assert not at.info
    assert any("swam" in m.value for m in at.markdown)  # the nearest token, shown in words
    next(b for b in at.button if "Paris" in b.label).click().run()
    assert_ok(at)
    assert at.text_input(key="analogy_equation__w").value == "Paris - France + Italy"
    assert len(at.get("vega_lite_chart")) == 1


def test_page_with_hostile_and_empty_input_shows_a_message(app):
    at = app.switch_page("lessons/analogy.py").run()
    box = at.text_input(key="analogy_equation__w")
    box.set_value("<script> + **bold** - ").run()  # an empty last term
    assert_ok(at)
    assert any("A term is empty" in i.value for i in at.info)
    assert not at.get("vega_lite_chart")
    at.text_input(key="analogy_equation__w").set_value("<script> - **bold**").run()
    assert_ok(at)
    assert len(at.get("vega_lite_chart")) == 1
    header = at.header[0].value
    assert "\\<script\\>" in header and "\\*\\*bold\\*\\*" in header  # shown literally
    at.text_input(key="analogy_equation__w").set_value("   ").run()
    assert_ok(at)
    assert any("Type an equation" in i.value for i in at.info)
