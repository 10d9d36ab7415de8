"""The README and docs/ stay true to the repository: every relative link resolves, every section that code or
docs send a reader to exists, every `make` target and `tinlab` command they name exists, and nothing cites
material outside the repository."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tinlab.__main__ import COMMANDS

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SOURCES = [p for d in ("tinlab", "workflow", "bench", "examples", "tests") for p in (REPO / d).rglob("*")
           if p.is_file() and p.suffix in (".py", ".smk", ".yaml", ".toml") and "build" not in p.parts
           and ".egg-info" not in str(p) and p.name != "test_docs.py"] + [REPO / "Makefile"]


def headings(page: Path) -> list[str]:
    """Section titles and bold paragraph leads of a page (what a reference can name)."""
    text = page.read_text()
    return re.findall(r"^#+ (.+)$", text, re.M) + re.findall(r"^\*\*([^*]+)\*\*", text, re.M)


def test_there_are_pages_and_the_readme_is_short():
    assert len(PAGES) >= 8
    assert len((REPO / "README.md").read_text().splitlines()) <= 260


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        assert (page.parent / target).exists(), f"{page.name}: link to {target}"


def test_every_section_a_reader_is_sent_to_exists():
    """`docs/x.md: 'Section'` (or "Section"), and `README: 'Section'`, in code, configs and pages."""
    pattern = re.compile(r"\b(README|docs/[a-z-]+\.md):? ['\"]([^'\"]{3,80})['\"]")
    seen = 0
    for source in SOURCES + PAGES:
        for page, name in pattern.findall(source.read_text()):
            target = REPO / ("README.md" if page == "README" else page)
            assert target.is_file(), f"{source.relative_to(REPO)}: {page} does not exist"
            assert any(name in h for h in headings(target)), f"{source.relative_to(REPO)}: no '{name}' in {page}"
            seen += 1
    assert seen >= 10  # the pattern does find the references


def test_make_targets_and_commands_named_exist():
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    for page in PAGES:
        text = page.read_text()
        for target in re.findall(r"`make ([a-z][\w-]*)", text):
            assert target in targets, f"{page.name}: make {target}"
        for command in re.findall(r"python -m tinlab ([a-z]+)", text):
            assert command in COMMANDS, f"{page.name}: python -m tinlab {command}"


def test_the_product_stands_alone():
    for path in PAGES + SOURCES:
        text = path.read_text()
        assert "../" + "shared" not in text and "REFERENCE" + ".md" not in text, path.relative_to(REPO)
