"""Sentences the pages show beside figures, built from the numbers they describe.

Kept here, not in the pages, so a caption can never drift from the data: each is a pure
function of the values, tested like any other builder.
"""

from __future__ import annotations

import numpy as np

from lib.analysis.attention import StepAttention
from lib.analysis.fingerprint import DIMENSIONS
from lib.analysis.head_roles import ROLE_TITLES, ROLES, HeadRoles
from lib.analysis.next_token import Filtered
from lib.config import MAX_LINE_WIDTH, MIN_LINE_WIDTH
from lib.measures import entropy_bits
from lib.model.result import GenerationResult
from lib.train.induction import InductionHistory


def describe_aggregation(n_layers: int, n_heads: int, layer: int | None, head: int | None) -> str:
    """What an attention view shows: "averaged over all 9 heads of layer 3" and the like."""
    what_layer = f"all {n_layers} layers" if layer is None else f"layer {layer}"
    what_head = f"all {n_heads} heads" if head is None else f"head {head}"
    verb = "averaged over" if layer is None or head is None else "from"
    return f"{verb} {what_head} of {what_layer}"


def count(n: int, noun: str) -> str:
    """ "1 token", "2,048 tokens"."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def sink_note(hidden: bool, renormalised: str = "every row renormalised") -> str:
    """The caption sentence for the sink switch, the same on every page."""
    if hidden:
        return f"The first token (the attention sink) is hidden and {renormalised}."
    return "Raw softmax weights: the first token (the attention sink) is included."


def sink_share_note(share: float, first: str, shown: bool) -> str:
    """The attention sink explained where a student first meets it, with its share."""
    if not shown:
        return (
            f"The hidden first token (the attention sink) took {share:.1%} of this step's raw "
            "attention; the lines share out the rest."
        )
    return (
        f"The first token “{first}” takes **{share:.1%}** of this step's raw attention: "
        "the thickest line. Models park attention there when no other token is needed "
        "(an *attention sink*); it says little about which words matter. Hide it to "
        "share the lines out over the other tokens."
    )


def matrix_sink_note(share: float, first: str) -> str:
    """The heatmap's dark first column, explained with its share of the rows shown."""
    return (
        f"The dark first column is the *attention sink*: the rows shown give the first token "
        f"“{first}” **{share:.1%}** of their attention on average. Models park attention "
        "there when no other token is needed; the switch above hides it and renormalises."
    )


def no_lines_note(step: StepAttention, threshold: float) -> str:
    """Why a step draws no line: its weights are spread thinner than the threshold."""
    n = len(step.input_norm)
    best = float(step.input_norm.max()) if n else 0.0
    return (
        f"No line of this step is above the threshold {threshold:.3f}. With "
        f"{count(n, 'prompt token')} each gets {1 / max(n, 1):.4f} when attention is "
        f"spread evenly, and the strongest prompt token here gets {best:.4f}. Lower the "
        "threshold, or draw the strongest lines of each step instead."
    )


def graph_scope(selected: tuple[str, int] | None, name: str, current: int, show_all: bool) -> str:
    """What the graph draws, in one line (`name`: the selected token's label, escaped by
    the caller; steps 1-based, `current` 0-based)."""
    s = current + 1
    if selected is None:
        return (
            f"Showing the lines of steps 1 to {s}."
            if show_all and s > 1
            else (f"Showing step {s}'s lines only.")
        )
    side, i = selected
    if side == "input":
        to = f"steps 1 to {s}" if s > 1 else "step 1"
        return f"Selected prompt token {i} “{name}”: showing its lines to the tokens of {to}."
    if i > current:
        return f"Selected “{name}”, which is written at step {i + 1}, after this one."
    return f"Selected “{name}” (written at step {i + 1}): showing what it looked at then."


def empty_graph_note(
    steps: list[StepAttention],
    current: int,
    selected: tuple[str, int] | None,
    name: str,
    threshold: float,
    top_k: int | None,
) -> str:
    """Why the graph draws no line, and what to do (`name` as in `graph_scope`)."""
    if selected is None:
        return no_lines_note(steps[current], threshold)
    side, i = selected
    if side == "output" and i > current:
        return (
            f"“{name}” is written at step {i + 1}, so at step {current + 1} there is nothing "
            f"of it to draw yet. Go to step {i + 1} to see what it looked at."
        )
    if side == "input":
        weights = np.array([steps[s].input_norm[i] for s in range(current + 1)])
        at = int(np.argmax(weights))
        rule = (
            f"is not among the {top_k} strongest prompt tokens at any step up to {current + 1}"
            if top_k is not None
            else f"gets no line above the threshold {threshold:.3f} at steps 1 to {current + 1}"
        )
        advice = (
            "Hidden with the sink, it gets no weight at all."
            if weights[at] == 0
            else "Lower the threshold below that, or pick another token."
            if top_k is None
            else "Raise k, or pick another token."
        )
        return (
            f"Prompt token {i} “{name}” {rule}: its strongest weight is {weights[at]:.4f}, "
            f"at step {at + 1}. {advice}"
        )
    row = steps[i]
    best = max(float(row.input_norm.max(initial=0.0)), float(row.output_norm.max(initial=0.0)))
    return (
        f"“{name}” draws no line above the threshold {threshold:.3f}: its strongest "
        f"normalised weight is {best:.4f}. Lower the threshold, or draw the strongest lines."
    )


def graph_caption(
    r: GenerationResult,
    layer: int | None,
    head: int | None,
    hide: bool,
    threshold: float,
    n_edges: int,
    top_k: int | None = None,
) -> str:
    """What the attention graph shows, said under it."""
    hidden = ""
    if r.bos_offset:
        hidden = " The BOS token the tokenizer added is hidden."
    elif hide:
        hidden = " The first prompt token is hidden (sink) and gets no lines."
    return (
        "Each step shows the attention computed while producing the coral token: its query "
        "is the token just before it (the last prompt token at step 1). Weights are "
        f"{describe_aggregation(r.n_layers, r.n_heads, layer, head)}. Blue lines: attention "
        "to prompt tokens; orange curves: attention to earlier generated tokens. Each colour "
        "is normalised separately (divided by its own sum) so both are visible; line width "
        f"is {MIN_LINE_WIDTH} px at weight 0 up to {MAX_LINE_WIDTH} px at weight 1, the same "
        "scale on every step (in steps of 0.1); hover a line for the normalised and raw "
        "weight. "
        + (
            f"Lines below the threshold ({threshold:.3f}) are hidden"
            if top_k is None
            else f"Only the {top_k} strongest lines of each colour per step are drawn"
        )
        + f" ({n_edges} shown). Coral: "
        "the token being generated; pink: earlier generated tokens; grey: not generated yet; "
        "yellow: your selection." + hidden
    )


def spread_caption(roles: HeadRoles, hide: bool) -> str:
    """What the spread grid measures, with its most specialised and most general head."""
    s = roles.spread
    if s is None or np.isnan(s).all():
        return (
            "Spread: no query of this text sees two or more tokens, so how widely a head "
            "spreads its attention is not defined here. Try the repeated random tokens."
        )
    low = np.unravel_index(np.nanargmin(s), s.shape)
    high = np.unravel_index(np.nanargmax(s), s.shape)
    return (
        "Spread: each head's attention entropy over the keys a query can see, divided by the "
        "entropy of spreading evenly over them, averaged over the queries of the text measured. 0: "
        "every query looks at one token (a specialised head, such as a previous-token or "
        "sink head); 1: at everything it can see, evenly (a general one). Most specialised "
        f"here: layer {low[0]} head {low[1]} ({float(s[low]):.3f}); most general: layer "
        f"{high[0]} head {high[1]} ({float(s[high]):.3f}). "
        + ("The first token is hidden and rows renormalised. " if hide else "")
        + "It replaces an eigenvalue view of attention matrices, whose eigenvalues of a "
        "causal (triangular) pattern are only its diagonal."
    )


def roles_caption(roles: HeadRoles, role: str, hide: bool) -> str:
    """The best head for a role, against chance, said under the grid."""
    scores = roles.score(role)
    best = np.unravel_index(np.nanargmax(scores), scores.shape)
    chance = float(roles.chance[ROLES.index(role)])
    return (
        f"{ROLE_TITLES[role]}: the best head is layer {best[0]} head {best[1]} "
        f"({float(scores[best]):.3f}); spreading attention evenly would score {chance:.3f} "
        "(chance). 1 means all of a head's attention goes where the role says. "
        + ("The first token is hidden and rows renormalised. " if hide and role != "sink" else "")
        + ("The sink share is the raw share, the part the switch hides. " if role == "sink" else "")
        + "Hover a cell for every score of the head."
    )


def fingerprint_caption(hide: bool) -> str:
    """What the zone strip shows, and what the sink switch does to it."""
    return (
        "The generated text, read left to right, each token coloured by the zone of the "
        "attention that produced it (mean over all layers and heads). Hover a token for its "
        "numbers. "
        + (
            "The first token is hidden and every row renormalised."
            if hide
            else "The first token (the attention sink) is included: it usually dominates, "
            "so most tokens land in the zone of its distance. Hide it to see the rest."
        )
    )


def filter_notes(
    probs: np.ndarray,
    entropy: float,
    temperature: Filtered,
    top_k: Filtered,
    top_p: Filtered,
    min_p: Filtered,
    settings: tuple[float, int, float, float],
) -> list[str]:
    """One sentence per filter panel: what the filter kept, and how much probability.

    `settings` is (temperature, k, p, min_p) as the sliders show them.
    """
    temp, k, p, mp = settings

    def mass(f: Filtered) -> float:
        return float(probs[f.kept].sum())

    shape = "sharper" if temp < 1 else "flatter" if temp > 1 else "unchanged"
    top = float(probs.max())
    k_note = (
        f"Keeps the {top_k.n_kept:,} most likely of {probs.size:,} tokens; their "
        f"{mass(top_k):.1%} of the probability is rescaled to 100%."
    )
    return [
        f"Cuts nothing: divides the logits by {temp:g}. Entropy {entropy:.2f} → "
        f"{entropy_bits(temperature.probs):.2f} bits ({shape}).",
        k_note if k else f"Off: keeps all {probs.size:,} tokens.",
        f"Keeps the most likely tokens until they add up to {p:g}: "
        f"{count(top_p.n_kept, 'token')} holding {mass(top_p):.1%}.",
        f"Keeps tokens with at least {mp:g} × {top:.3f} = {min_p.threshold:.4f} "
        f"(dashed line): {count(min_p.n_kept, 'token')} holding {mass(min_p):.1%}.",
    ]


def min_p_lesson(top: float, min_p: float, threshold: float) -> str:
    """Why min-p moves with the model's confidence, with this step's numbers."""
    return (
        f"**Min-p moves with the model's confidence.** It keeps a token when its probability "
        f"is at least min-p times the top token's. Here the top token has {top:.3f}, so the "
        f"bar is {min_p:g} × {top:.3f} = {threshold:.4f}. When the model is sure (top token "
        f"0.9) the same min-p cuts everything below {min_p * 0.9:.3f}; when it is unsure (top "
        f"token 0.05) only what is below {min_p * 0.05:.4f}. Top-k keeps a fixed count and "
        "top-p a fixed total whatever the confidence; min-p cuts the long tail of unlikely "
        "tokens when the choice is clear and leaves room when many tokens are plausible."
    )


def induction_story(h: InductionHistory) -> str:
    """What the lab's run shows: when the induction head formed, and through which route."""
    phase = h.phase_change()
    if phase is None:
        return "No head has passed an induction score of 0.5 yet: train longer."
    before, after = h.loss_second[max(phase - 2, 0)], h.loss_second[-1]
    prev0 = float(h.prev_token[-1, 0].max())
    dup0 = float(h.role("duplicate_token")[-1, 0].max())
    if max(prev0, dup0) < 0.5:
        route = "Layer 0 shows neither helper clearly yet."
    elif prev0 >= dup0:
        route = (
            f"Layer 0 grew a previous-token head ({prev0:.2f}): every position learns the "
            "token before it, and the induction head looks for the position whose previous "
            "token is the current one: the circuit Olsson et al. describe."
        )
    else:
        route = (
            f"Layer 0 grew a duplicate-token head ({dup0:.2f}) instead: the current token "
            "finds its earlier copy there, and the layer-1 head reads the position right after "
            "it. Another route to the same copying; a different seed may take the classic one "
            "(a previous-token head)."
        )
    return (
        f"The best induction head passed 0.5 at step {int(h.steps[phase]):,} (dashed line). "
        f"Around it the second-half loss fell from {before:.2f} to {after:.2f} nats, while the "
        f"first half stayed near {h.loss_first[-1]:.2f} (guessing among the unseen tokens). "
        "In-context learning score: second-half minus first-half loss. " + route
    )


def family_story(size: int, total: int, centroid, dominant_zone: str, zone_share: float) -> str:
    """A family card's sentences, from its mean fingerprint (Markdown-safe: no user text)."""
    c = dict(zip(DIMENSIONS, (float(x) for x in centroid), strict=True))
    first = c["hist_0"]
    return (
        f"{size:,} tokens ({size / max(total, 1):.0%} of the map), mostly "
        f"*{dominant_zone.replace('_', ' ')}* ({zone_share:.0%}). On average their attention "
        f"puts {c['local_mass']:.0%} on the last 10 tokens, {c['mid_mass']:.0%} on tokens "
        f"10-99 back and {c['long_mass']:.0%} further; {first:.0%} lands in the first eighth "
        f"of the text (where the attention sink is). Heads' spread (entropy, 0 = one "
        f"token, 1 = even): {c['entropy']:.2f}."
    )


def split_characters_note(runs: list[tuple[int, int, str]], limit: int = 8) -> str | None:
    """A caption for the characters the tokenizer split over tokens (`labels.split_characters`),
    plain text; None when there are none."""
    if not runs:
        return None
    parts = [
        f"tokens {a}-{b} write “{text}”" if b > a else f"token {a} writes “{text}”"
        for a, b, text in runs[:limit]
    ]
    more = f", and {len(runs) - limit} more" if len(runs) > limit else ""
    return (
        "Characters split over tokens (⟨..⟩ is each token's share of the bytes): "
        + "; ".join(parts)
        + more
        + "."
    )
