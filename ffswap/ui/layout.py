"""The pages' shared frame: one HTML document per page, no build step, no external
assets (the page works offline and leaks nothing), errors worded as the CLI words
them."""

from __future__ import annotations

from html import escape

NAV = (("/", "Modules"), ("/history", "History"), ("/preview", "Preview"),
       ("/compare", "Compare"))

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
header{background:#1d1d1f;color:#fff;padding:10px 20px;display:flex;gap:18px;align-items:center}
header a{color:#ddd;text-decoration:none}header a.here{color:#fff;font-weight:600}
main{padding:16px 20px;max-width:1200px}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:5px 9px;
text-align:left;vertical-align:top}th{background:#f0f0f0}
.error{background:#fde8e8;border:1px solid #e0a0a0;padding:8px 12px;margin:8px 0;
font-family:ui-monospace,monospace;white-space:pre-wrap}
.ok{background:#e8f6e8;border:1px solid #9c9;padding:8px 12px;margin:8px 0}
button{cursor:pointer}.muted{color:#777}
"""


def page(title: str, body: str, *, here: str = "/", message: str = "",
         error: str = "") -> str:
    """A whole page: `body` is trusted HTML (callers escape what they put in it);
    `message` and `error` are plain text, an error shown exactly as `ff` prints it."""
    nav = "".join(f'<a href="{path}"{" class=here" if path == here else ""}>{escape(name)}</a>'
                  for path, name in NAV)
    notes = (f'<div class="ok">{escape(message)}</div>' if message else "") + (
        f'<div class="error" id="error">error: {escape(error)}</div>' if error else "")
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)} - ff ui"
            f"</title><style>{STYLE}</style></head><body><header><b>ff ui</b>{nav}</header>"
            f"<main><h1>{escape(title)}</h1>{notes}{body}</main></body></html>")
