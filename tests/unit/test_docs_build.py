"""The documentation: `docs/` builds with MkDocs in strict mode (a broken link or anchor fails),
and the README stays a short way in whose links all resolve."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict",
         "--config-file", str(config), "--site-dir", str(site)],
        capture_output=True, text=True, timeout=300, cwd=config.parent,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = build(REPO / "mkdocs.yml", out)
    assert done.returncode == 0 and "WARNING" not in done.stderr, done.stderr
    return out


def nav_pages(nav: list[object]) -> list[str]:
    pages: list[str] = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += nav_pages(value) if isinstance(value, list) else [str(value)]
    return pages


def test_docs_build_strict_with_every_page_in_the_nav(site: Path) -> None:
    # mkdocs.yml is plain YAML apart from MkDocs' own tags, which it does not use
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    assert config["strict"] is True and config["theme"]["name"] == "mkdocs"
    assert config["validation"]["anchors"] == "warn"
    pages = nav_pages(config["nav"])
    assert sorted(pages) == sorted(p.name for p in (REPO / "docs").glob("*.md"))
    for page in pages:
        name = "index.html" if page == "index.md" else f"{page[:-3]}/index.html"
        assert (site / name).is_file(), page


def test_a_broken_link_or_anchor_fails_the_build(tmp_path: Path) -> None:
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    shutil.copy(REPO / "mkdocs.yml", tmp_path / "mkdocs.yml")
    index = tmp_path / "docs" / "index.md"
    text = index.read_text()
    for bad in ("[x](no-such-page.md)", "[x](rules.md#no-such-anchor)", "[x](../README.md)"):
        index.write_text(f"{text}\n{bad}\n")
        done = build(tmp_path / "mkdocs.yml", tmp_path / "site")
        assert done.returncode != 0, bad
        assert "WARNING" in done.stderr and bad.split("(")[1].rstrip(")") in done.stderr, done.stderr


def anchors(html: str) -> set[str]:
    return set(re.findall(r'\sid="([^"]+)"', html))


def test_readme_links_resolve_to_files_and_anchors(site: Path) -> None:
    text = README.read_text()
    own = anchors_of_markdown(text)
    links = [t for t in LINK.findall(text) if not re.match(r"[a-z]+://", t)]
    assert links, "the README links to its reference pages"
    for target in links:
        path, _, anchor = target.partition("#")
        if not path:
            assert anchor in own, f"README: no section for #{anchor}"
            continue
        assert (REPO / path).exists(), f"README links to {path}, which does not exist"
        if anchor and path.startswith("docs/") and path.endswith(".md"):
            page = Path(path).stem
            html = (site / ("index.html" if page == "index" else f"{page}/index.html")).read_text()
            assert anchor in anchors(html), f"README: {path} has no anchor #{anchor}"


def anchors_of_markdown(text: str) -> set[str]:
    # GitHub's heading slugs: lower case, punctuation dropped, spaces as dashes
    heads = re.findall(r"^#{1,6} (.+)$", re.sub(r"```.*?```", "", text, flags=re.S), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


def test_readme_is_a_short_way_in_with_two_commands() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    first_block = re.search(r"```\w*\n(.*?)```", text, flags=re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make run", "make test"]
    for section in ("## What `make run` shows", "## How it fits together", "## The step contract",
                    "## Deploying in brief", "## Extending rpops"):
        assert section in text, section
