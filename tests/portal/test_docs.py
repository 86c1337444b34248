"""The README stays a front page and the manual in docs/ stays navigable: every relative
link between them names a page and a heading that exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 220
LINK = re.compile(r"\]\((?!https?:)([^)#\s]+\.md)?(?:#([^)\s]+))?\)")


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def anchors(page: Path) -> set[str]:
    """GitHub's heading slugs: lowercase, punctuation dropped, spaces as hyphens."""
    found, in_code = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            found.add(re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-"))
    return found


def test_the_readme_is_short():
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move the detail to a page in docs/"


def test_every_docs_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    unlinked = [p.name for p in pages()[1:] if f"(docs/{p.name})" not in readme]
    assert not unlinked, f"pages no newcomer can find from the README: {unlinked}"


def test_every_relative_link_names_an_existing_page_and_heading():
    broken = []
    for page in pages():
        for match in LINK.finditer(page.read_text()):
            target = (page.parent / match.group(1)).resolve() if match.group(1) else page
            if not target.exists():
                broken.append(f"{page.name}: {match.group(0)} (no such page)")
            elif match.group(2) and match.group(2) not in anchors(target):
                broken.append(f"{page.name}: {match.group(0)} (no such heading)")
    assert not broken, "\n".join(broken)
