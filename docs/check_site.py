# SPDX-License-Identifier: GPL-3.0-or-later
"""Check a built site: it opens offline, and every tutorial shows the figures its code draws.

`make docs` runs it after the build: ``python docs/check_site.py docs/_build/html``.

- No page loads a script, style sheet, font or image from elsewhere (links the reader may follow,
  DOIs and sources, are fine).
- Every executed tutorial page holds at least as many images as its source asks for (``plt.show()``,
  ``Image(filename=...)``): a library that switched a notebook's matplotlib backend to Agg would
  otherwise drop figures from the site without an error.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

# src= on any tag, href= on <link> (style sheets, icons, preloads), url(...) in inline styles
RESOURCE = re.compile(r"""<(?:script|img|iframe|source|video|audio|embed)\b[^>]*\bsrc\s*=\s*["']([^"']+)["']"""
                      r"""|<link\b[^>]*\bhref\s*=\s*["']([^"']+)["']|url\(\s*["']?([^"')]+)""", re.I)


def remote_resources(root: Path) -> list[str]:
    found = []
    for page in sorted(root.rglob("*.html")) + sorted(root.rglob("*.css")):
        for m in RESOURCE.finditer(page.read_text(errors="replace")):
            url = next(g for g in m.groups() if g)
            if re.match(r"(?i)^(https?:)?//", url):
                found.append(f"{page.relative_to(root)}: {url}")
    return found


FIGURE_CALLS = re.compile(r"plt\.show\(\)|\bImage\(filename=")


def missing_figures(root: Path, source: Path) -> list[str]:
    """Tutorial pages with fewer images than their code cells draw."""
    short = []
    for md in sorted((source / "tutorials").glob("*.md")):
        page = root / "tutorials" / f"{md.stem}.html"
        if not page.is_file():
            short.append(f"tutorials/{md.stem}.html: not built")
            continue
        expected = len(FIGURE_CALLS.findall(md.read_text()))
        shown = len(re.findall(r"<img\b", page.read_text(errors="replace")))
        if shown < expected:
            short.append(f"tutorials/{md.stem}.html: {shown} images, its code draws at least {expected}")
    return short


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else "docs/_build/html")
    source = Path(argv[2]) if len(argv) > 2 else Path(__file__).resolve().parent
    if not (root / "index.html").is_file():
        print(f"check_site: {root}/index.html does not exist (build the site first: make docs)", file=sys.stderr)
        return 2
    bad = remote_resources(root)
    for line in bad:
        print(f"check_site: fetched from elsewhere: {line}", file=sys.stderr)
    short = missing_figures(root, source)
    for line in short:
        print(f"check_site: figures missing: {line}", file=sys.stderr)
    pages = len(list(root.rglob("*.html")))
    print(f"check_site: {pages} pages, {'no' if not bad else len(bad)} remote resources, "
          f"{'every tutorial shows its figures' if not short else f'{len(short)} tutorials miss figures'}")
    return 1 if bad or short else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
