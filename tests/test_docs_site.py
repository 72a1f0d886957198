"""The docs site builds, covers every page, and no relative link in the docs is broken.

``mkdocs build --strict`` turns every warning into an error; ``mkdocs.yml`` sets its link,
anchor and nav validation to "warn", so a broken link, a missing anchor, a nav entry without a
file or a page left out of the nav fails the build. The link test also covers README.md,
which is not part of the site.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

import yaml
from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CONFIG = ROOT / "mkdocs.yml"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

FENCED = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # https:, mailto:, ...


def load_config() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def nav_files(nav: object) -> list[str]:
    """Every page file named in a (possibly nested) mkdocs nav."""
    if isinstance(nav, str):
        return [] if EXTERNAL.match(nav) else [nav]
    if isinstance(nav, list):
        return [f for item in nav for f in nav_files(item)]
    if isinstance(nav, dict):
        return [f for value in nav.values() for f in nav_files(value)]
    return []


def html_for(page: str, directory_urls: bool) -> PurePosixPath:
    """Where mkdocs writes the HTML of a docs page (with or without directory URLs)."""
    path = PurePosixPath(page)
    if path.stem in ("index", "README"):
        return path.parent / "index.html"
    if directory_urls:
        return path.parent / path.stem / "index.html"
    return path.with_suffix(".html")


def prose(markdown: str) -> str:
    """Markdown without code blocks and inline code (links there are not links)."""
    return INLINE_CODE.sub("", FENCED.sub("", markdown))


def anchors(markdown: str) -> set[str]:
    """Heading ids as Python-Markdown's toc extension makes them (mkdocs' default)."""
    ids = set()
    for title in HEADING.findall(FENCED.sub("", markdown)):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # [text](url) -> text
        ids.add(slugify(text.replace("`", "").replace("*", "").strip(), "-"))
    return ids


def relative_links(page: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(prose(page.read_text()))
        if not EXTERNAL.match(target) and not target.startswith("//")
    ]


def test_every_docs_page_is_in_the_nav_and_every_nav_entry_exists():
    files = nav_files(load_config()["nav"])
    assert len(files) == len(set(files)), f"a page is listed twice in the nav: {files}"
    on_disk = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert not on_disk - set(files), (
        f"docs pages missing from mkdocs.yml nav: {sorted(on_disk - set(files))}"
    )
    assert not set(files) - on_disk, (
        f"nav entries without a file in docs/: {sorted(set(files) - on_disk)}"
    )


def test_relative_links_point_to_existing_files_and_anchors():
    broken = []
    for page in PAGES:
        for target in relative_links(page):
            path_part, _, fragment = target.partition("#")
            file = (page.parent / unquote(path_part)).resolve() if path_part else page
            if not file.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no file {file})")
            elif fragment and file.suffix == ".md" and fragment not in anchors(file.read_text()):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no heading #{fragment})")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_docs_pages_link_only_inside_docs():
    """mkdocs can only serve files under docs/: a link to ../examples/x.py breaks on the site."""
    outside = [
        f"{page.name}: {target}"
        for page in DOCS.glob("*.md")
        for target in relative_links(page)
        if target.partition("#")[0]
        and DOCS.resolve() not in (page.parent / target.partition("#")[0]).resolve().parents
    ]
    assert not outside, f"links from docs/ to files outside it: {outside}"


def test_site_builds_strict_with_one_html_page_per_nav_entry(tmp_path):
    site = tmp_path / "site"
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(CONFIG)]
    res = subprocess.run(
        [*cmd, "--site-dir", str(site)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, f"mkdocs build --strict failed:\n{res.stdout}\n{res.stderr}"
    assert (site / "index.html").is_file()
    config = load_config()
    directory_urls = config.get("use_directory_urls", True)
    missing = [
        page
        for page in nav_files(config["nav"])
        if not (site / html_for(page, directory_urls)).is_file()
    ]
    assert not missing, f"no HTML produced for nav pages {missing}"
