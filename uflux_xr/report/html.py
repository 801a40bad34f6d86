"""A self-contained HTML page: sections of text, tables and inline PNG figures.

Nothing is fetched when the page opens: the style sheet is inline, figures are
``data:`` URIs, and there is no script.  The page is written atomically, so a
failed report never leaves a half-written file behind.
"""

from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from uflux_xr.io.atomic import write_text_atomic

#: Resolution of the embedded figures [dots per inch]; 90 keeps a 20-figure report near 2 MB.
FIGURE_DPI = 90

_STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; } h3 { margin-top: 1.4em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
.note { color: #555; font-style: italic; }
nav ul { columns: 3; }
"""


def figure_png(fig) -> bytes:
    """PNG bytes of a matplotlib figure at :data:`FIGURE_DPI`."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
    return buf.getvalue()


@dataclass
class Page:
    """An HTML page built section by section (see the module docstring)."""

    title: str
    parts: list[str] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)

    def section(self, title: str, level: int = 2) -> None:
        """Start a section; level-2 sections are listed in the table of contents."""
        anchor = f"s{len(self.sections) + 1}"
        if level == 2:
            self.sections.append((anchor, title))
        self.parts.append(f'<h{level} id="{anchor}">{html.escape(title)}</h{level}>')

    def text(self, text: str, note: bool = False) -> None:
        """A paragraph (escaped)."""
        cls = ' class="note"' if note else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def pre(self, text: str) -> None:
        """Preformatted text (a configuration, a log)."""
        self.parts.append(f"<pre>{html.escape(text)}</pre>")

    def table(self, frame: pd.DataFrame, float_format: str = "{:.3g}", index: bool = False) -> None:
        """A table; floats shown with ``float_format``."""
        shown = frame.copy()
        for col in shown.columns:
            if pd.api.types.is_float_dtype(shown[col]):
                shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else float_format.format(v))
        self.parts.append(shown.to_html(index=index, border=0, escape=True, na_rep=""))

    def figure(self, fig, alt: str) -> None:
        """Embed a matplotlib figure as an inline PNG and release it."""
        data = base64.b64encode(figure_png(fig)).decode("ascii")
        self.parts.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">')

    def render(self) -> str:
        """The whole page."""
        toc = "".join(f'<li><a href="#{a}">{html.escape(t)}</a></li>' for a, t in self.sections)
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1><nav><ul>{toc}</ul></nav>" + "\n".join(self.parts) + "</body></html>\n"
        )

    def write(self, path: str | os.PathLike) -> Path:
        """Write the page atomically to ``path``; returns the path."""
        return write_text_atomic(path, self.render())
