"""The book's contents: every lesson page once, in reading order.

main.py builds its navigation from this list, the Welcome page its table of contents, and
the tests their list of pages; a page is added, renamed or moved here and nowhere else.
No Streamlit import: the tests read it without running the app.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Lesson:
    """One page of the book.

    `narrow` pages are meant for reading and keep a narrow column; the others are as wide
    as their figures (Next token's four filter charts side by side, the heatmaps).
    """

    path: str  # the page script, relative to main.py
    title: str
    icon: str
    part: str  # the part of the book it sits in (a group of the navigation)
    blurb: str  # what it teaches, in a sentence or two (the Welcome page's contents)
    narrow: bool = False


LAB = "Train your own"  # the part whose pages train their own model, not the current run

LESSONS: tuple[Lesson, ...] = (
    Lesson(
        "lessons/home.py",
        "Welcome",
        ":material/home:",
        "Start here",
        "The contents of the book, with a line on what each page teaches.",
        narrow=True,
    ),
    Lesson(
        "lessons/generate.py",
        "Generate",
        ":material/edit_note:",
        "Write",
        "Type a prompt and watch the model continue it, one token at a time. "
        "The other pages all look inside this one run.",
    ),
    Lesson(
        "lessons/next_token.py",
        "Next token",
        ":material/casino:",
        "Write",
        "At each step the model scores every token it knows. See those chances, and how "
        "greedy choice, temperature and top-k / top-p / min-p pick one.",
    ),
    Lesson(
        "lessons/step_by_step.py",
        "Step by step",
        ":material/call_split:",
        "Write",
        "Add the next token yourself, or change one choice and see where the text goes.",
        narrow=True,
    ),
    Lesson(
        "lessons/attention_graph.py",
        "Attention graph",
        ":material/hub:",
        "Attention",
        "Lines from each new token back to the tokens it looked at, and how strongly.",
    ),
    Lesson(
        "lessons/matrices.py",
        "Attention matrices",
        ":material/grid_on:",
        "Attention",
        "The same attention as heatmaps: every layer, every head, the exact numbers.",
    ),
    Lesson(
        "lessons/predictions.py",
        "Tokens & predictions",
        ":material/token:",
        "Inside the model",
        "How your text becomes tokens with ids, and what the model expected after each.",
    ),
    Lesson(
        "lessons/head_roles.py",
        "Head roles",
        ":material/psychology:",
        "Inside the model",
        "Heads take on jobs: looking at the previous token, the first one, or copying.",
    ),
    Lesson(
        "lessons/ablation.py",
        "Ablate a head",
        ":material/content_cut:",
        "Inside the model",
        "Switch a head off and see what changes: a test of the job it was given.",
        narrow=True,
    ),
    Lesson(
        "lessons/causes.py",
        "Cause and effect",
        ":material/science:",
        "Inside the model",
        "Which parts wrote the chosen token, and which activations carry an answer from "
        "one prompt to another.",
    ),
    Lesson(
        "lessons/lenses.py",
        "Logit lens & fingerprints",
        ":material/layers:",
        "Inside the model",
        "The model's guess after every layer, each token's attention fingerprint, and "
        "what its weights can do.",
    ),
    Lesson(
        "lessons/analogy.py",
        "Vector arithmetic",
        ":material/calculate:",
        "Inside the model",
        "Words as rows of numbers: king − man + woman, and which tokens lie closest.",
        narrow=True,
    ),
    Lesson(
        "lessons/atlas.py",
        "Attention atlas",
        ":material/scatter_plot:",
        "Inside the model",
        "A map of many tokens, placed by the way they paid attention.",
    ),
    Lesson(
        "lessons/train.py",
        "Train a transformer",
        ":material/model_training:",
        LAB,
        "Train a tiny transformer on a few sentences and watch its loss fall.",
    ),
    Lesson(
        "lessons/train_use.py",
        "Use the trained model",
        ":material/chat:",
        LAB,
        "Ask the model you trained for its guesses, let it write, and save it.",
    ),
    Lesson(
        "lessons/induction.py",
        "Induction heads",
        ":material/repeat:",
        LAB,
        "A two-layer model learns to copy, and its induction heads appear all at once.",
    ),
    Lesson(
        "lessons/class_lab.py",
        "The class's lab",
        ":material/groups:",
        LAB,
        "Everyone's induction-lab runs on one chart, each phase change marked: the "
        "teacher's view, to save as an offline page.",
    ),
)

HOME = LESSONS[0]  # the page the app opens on


def parts() -> dict[str, list[Lesson]]:
    """The lessons grouped by part, in reading order."""
    grouped: dict[str, list[Lesson]] = {}
    for lesson in LESSONS:
        grouped.setdefault(lesson.part, []).append(lesson)
    return grouped


def by_title(title: str) -> Lesson:
    return next(lesson for lesson in LESSONS if lesson.title == title)


def markdown_table() -> str:
    """The lessons as the README's table (tests/test_readme.py keeps the two the same)."""
    rows = ["| part | page | what it teaches |", "|---|---|---|"]
    rows += [f"| {x.part} | **{x.title}** | {x.blurb} |" for x in LESSONS]
    return "\n".join(rows)
