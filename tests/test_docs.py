"""The built documentation reads without network access: no page loads a
script or a stylesheet from another host.

Checks ``docs/_build/html`` when it exists (CI builds it first, see
``.ci/run``; skipped otherwise). Also a script:
``python tests/test_docs.py docs/_build/html``.
"""

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

BUILD = Path(__file__).resolve().parents[1] / "docs" / "_build" / "html"
REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)


class _Loads(HTMLParser):
    """The URLs a page loads: script sources and stylesheet links."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "link" and "stylesheet" in (attrs.get("rel") or "").split():
            self.urls.append(attrs.get("href") or "")


def remote_loads(html_dir: Path) -> dict:
    """``{page: [remote URLs]}`` for every page that loads something from
    another host."""
    found = {}
    for page in sorted(html_dir.rglob("*.html")):
        parser = _Loads()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        remote = [url for url in parser.urls if REMOTE.match(url)]
        if remote:
            found[str(page.relative_to(html_dir))] = remote
    return found


def test_remote_urls_are_recognised(tmp_path):
    (tmp_path / "a.html").write_text(
        '<script src="https://cdn.example/mathjax.js"></script>'
        '<script src="_static/mathjax/tex-chtml.js"></script>'
        '<link rel="stylesheet" href="//fonts.example/css">'
        '<a href="https://example.org">a link is fine</a>'
    )
    assert remote_loads(tmp_path) == {
        "a.html": ["https://cdn.example/mathjax.js", "//fonts.example/css"]
    }


def test_built_pages_load_nothing_from_another_host():
    # pytest imported here: run as a script in the docs build's environment,
    # this module needs only the standard library
    import pytest

    if not BUILD.is_dir():
        pytest.skip("docs not built (docs/_build/html)")
    assert remote_loads(BUILD) == {}
    # the formulas are rendered by the MathJax copied into the build
    assert (BUILD / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert "_static/mathjax/tex-chtml.js" in (BUILD / "math.html").read_text()


if __name__ == "__main__":
    html_dir = Path(sys.argv[1] if len(sys.argv) > 1 else BUILD)
    pages = len(list(html_dir.rglob("*.html")))
    remote = remote_loads(html_dir)
    for page, urls in remote.items():
        print(f"{page}: loads {', '.join(urls)}")
    print(f"{pages} pages checked, {len(remote)} load from another host")
    sys.exit(1 if remote or pages == 0 else 0)
