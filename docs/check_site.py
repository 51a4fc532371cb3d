# SPDX-License-Identifier: GPL-3.0-or-later
"""Check a built site opens offline: no page loads a script, style sheet, font or image from elsewhere.

`make docs` runs it after the build: ``python docs/check_site.py docs/_build/html``. Links the reader
may follow (DOIs, sources) are fine; resources the browser would fetch by itself are not.
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


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else "docs/_build/html")
    if not (root / "index.html").is_file():
        print(f"check_site: {root}/index.html does not exist (build the site first: make docs)", file=sys.stderr)
        return 2
    bad = remote_resources(root)
    for line in bad:
        print(f"check_site: fetched from elsewhere: {line}", file=sys.stderr)
    pages = len(list(root.rglob("*.html")))
    print(f"check_site: {pages} pages, {'no' if not bad else len(bad)} remote resources")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
