"""The README is a short user's guide whose links resolve; the rest lives in the docs site (mkdocs.yml)."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def _local_links(markdown: str) -> list[str]:
    return [m.group(1) for m in LINK.finditer(markdown) if "://" not in m.group(1)]


def test_readme_is_a_short_guide_whose_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    links = _local_links(text)
    assert "docs/suites.md" in links
    missing = [link for link in links if not (ROOT / link).exists()]
    assert missing == []


def test_every_docs_page_is_in_the_site_navigation():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def pages(nav):
        for entry in nav:
            if isinstance(entry, str):
                yield entry
            else:
                for value in entry.values():
                    yield from ([value] if isinstance(value, str) else pages(value))

    in_nav = set(pages(config["nav"]))
    on_disk = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md") if "examples" not in p.parts}
    assert on_disk == in_nav


def test_evidence_pages_name_date_machine_and_command():
    for page in (ROOT / "docs" / "evidence").glob("*.md"):
        if page.name == "index.md":
            continue
        head = page.read_text(encoding="utf-8")[:1200]
        assert re.search(r"\*\*Date:\*\* \d{4}-\d{2}-\d{2}", head), page.name
        assert "**Machine" in head, page.name
        assert "**Command" in head, page.name
