"""What docs/architecture.md says about the tree, checked against the tree: who imports
whom, no module cycle through app/, short page scripts, and (in every document) files that
exist."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RULES = ("lib.config", "lib.labels", "lib.measures")  # the shared rules
MAX_PAGE_LINES = 180


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function (absolute imports: the
    project uses no relative ones)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def imported_by(folder: str) -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in files(folder)}


def reaches(names: set[str], prefix: str) -> set[str]:
    return {n for n in names if n == prefix or n.startswith(prefix + ".")}


def test_the_library_never_imports_streamlit_or_the_app():
    for module, names in imported_by("lib").items():
        assert not reaches(names, "streamlit") and not reaches(names, "app"), module


def test_the_shared_rules_need_only_numpy():
    for rule in RULES:
        top = {n.split(".")[0] for n in imports(ROOT / (rule.replace(".", "/") + ".py"))}
        assert top - sys.stdlib_module_names <= {"numpy"}, rule


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("lib/model", ("lib.analysis", "lib.viz", "lib.train", "lib.atlas")),
        ("lib/analysis", ("lib.viz", "lib.train", "lib.atlas")),
        ("lib/viz", ("torch", "transformers", "lib.atlas")),
        ("lib/atlas", ("lib.viz", "lib.train")),
        ("lib/serve", ("lib.viz", "lib.train", "lib.atlas")),
        ("lessons", ("torch", "transformers")),
    ],
)
def test_each_layer_imports_only_what_the_table_allows(layer, forbidden):
    for module, names in imported_by(layer).items():
        for prefix in forbidden:
            assert not reaches(names, prefix), f"{module} imports {prefix}"


def test_figures_take_only_result_types_from_the_engine_and_the_lab():
    # results: a run, the labs' histories and predictions, a pooled run (its pool is plain
    # SQLite: no model, no training)
    allowed = {"lib.model.result", "lib.train.induction", "lib.train.training", "lib.train.pool"}
    for module, names in imported_by("lib/viz").items():
        for prefix in ("lib.model", "lib.train"):
            modules = {".".join(n.split(".")[:3]) for n in reaches(names, prefix)}
            assert modules <= allowed, (module, modules - allowed)


def test_the_lab_draws_figures_only_from_its_command_line():
    for module, names in imported_by("lib/train").items():
        if reaches(names, "lib.viz"):
            assert module == "lib.train.__main__", module


def test_no_import_cycle_runs_through_the_app():
    app = imported_by("app")  # `from app.widgets import chrome` names app.widgets.chrome
    graph = {module: {n for n in names if n in app} for module, names in app.items()}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in done:
            return
        for target in graph[module]:
            visit(target, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())


@pytest.mark.parametrize("page", sorted(p.name for p in (ROOT / "lessons").glob("*.py")))
def test_page_scripts_stay_short(page):
    n = len((ROOT / "lessons" / page).read_text(encoding="utf-8").splitlines())
    assert n <= MAX_PAGE_LINES, f"lessons/{page} has {n} lines"


def test_the_docs_name_only_files_that_exist():
    named = set()
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        named |= set(re.findall(r"`((?:lib|app|lessons|tests|bench)/[\w/]+\.(?:py|json))`", text))
    assert len(named) >= 20, named
    missing = sorted(p for p in named if not (ROOT / p).is_file())
    assert not missing, missing


# What only lib/model may touch: Hugging Face module paths, hooks and config reads.
MODEL_INSIDES = {
    "model", "base_model", "config", "layers", "self_attn", "o_proj", "v_proj", "c_attn", "c_proj",
    "dense", "query_key_value", "input_layernorm", "ln_1", "get_input_embeddings",
    "get_output_embeddings", "register_forward_hook", "register_forward_pre_hook",
}  # fmt: skip


@pytest.mark.parametrize(
    "path", sorted((ROOT / "lib" / "analysis").glob("*.py")), ids=lambda p: p.name
)
def test_the_analysis_reads_the_model_only_through_its_interface(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    reached = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in MODEL_INSIDES
    }
    assert not reached, f"{path.name} reaches into the model: {sorted(reached)}"
