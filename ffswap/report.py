"""What `ff compare` leaves behind: a JSON summary (a public contract, see
docs/FORMATS.md, for CI and scripts) and a self-contained HTML report for people.

The report is one file with nothing to fetch: crops are inline base64 PNGs, the
per-frame plot is inline SVG, and there is no script, so it opens the same from a CI
artifact, a mail attachment or an offline machine.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ffstore.fsutil import atomic_write
from ffswap.compare import Comparison, FrameResult, Side, SideSummary, Summary, Version
from ffswap.errors import OutputError

SPEC = 1
COLOURS = {"from": "#1f77b4", "to": "#d62728", "both": "#2ca02c"}


def _number(value: float | None, digits: int = 4) -> float | None:
    """JSON has no inf or NaN: such a value (PSNR of identical outputs) is null."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _side(side: SideSummary | Side) -> dict[str, Any]:
    if isinstance(side, SideSummary):
        found: float | int | None = _number(side.found)
        ms = side.ms_per_frame
    else:
        found, ms = side.found, side.ms
    return {"identity_source": _number(side.identity_source),
            "identity_target": _number(side.identity_target),
            "found": found, "displacement": _number(side.displacement),
            "ms_per_frame": _number(ms, 3)}


def _summary(summary: Summary) -> dict[str, Any]:
    return {"frames": summary.frames, "faces": summary.faces, "ssim": _number(summary.ssim),
            "ssim_min": _number(summary.ssim_min), "psnr": _number(summary.psnr, 2),
            "slowdown": _number(summary.slowdown, 3),
            "from": _side(summary.a), "to": _side(summary.b)}


def _frame(frame: FrameResult) -> dict[str, Any]:
    return {"index": frame.index, "faces": frame.faces, "ssim": _number(frame.ssim),
            "psnr": _number(frame.psnr, 2), "from": _side(frame.a), "to": _side(frame.b)}


def _version(version: Version) -> dict[str, str]:
    return {"model": version.model, "version": version.version, "provider": version.provider}


def summary(comparison: Comparison) -> dict[str, Any]:
    """The JSON summary's object (docs/FORMATS.md, "ff compare summary")."""
    thresholds = comparison.thresholds
    return {
        "type": "ff-compare",
        "spec": SPEC,
        "module": comparison.module,
        "from": _version(comparison.a),
        "to": _version(comparison.b),
        "worse": comparison.worse,
        "failed": [{"metric": failure.metric, "from": _number(failure.before),
                    "to": _number(failure.after), "change": _number(failure.change),
                    "limit": failure.limit, "message": failure.message}
                   for failure in comparison.failures],
        "thresholds": {name: getattr(thresholds, name) for name in thresholds.names()},
        "total": _summary(comparison.total),
        "inputs": [{"path": str(result.path), "kind": result.kind, **_summary(result.summary),
                    "per_frame": [_frame(frame) for frame in result.frames]}
                   for result in comparison.inputs],
    }


def write_json(comparison: Comparison, path: Path) -> None:
    text = json.dumps(summary(comparison), indent=2, allow_nan=False) + "\n"
    atomic_write(path, text.encode())


def _png(image: np.ndarray) -> str:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise OutputError("cannot encode a report crop as PNG")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode()


def _chart(title: str, series: list[tuple[str, list[float | None]]],
           boundaries: list[int], width: int = 760, height: int = 150) -> str:
    """An SVG line chart of per-frame values (None or non-finite: a gap), with a
    vertical rule where each input after the first begins."""
    left, right, top, bottom = 56, 12, 22, 18
    values = [v for _, points in series for v in points if v is not None and math.isfinite(v)]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    count = max(len(points) for _, points in series)
    inner_w, inner_h = width - left - right, height - top - bottom

    def x(i: int) -> float:
        return left + inner_w * (i / (count - 1) if count > 1 else 0.5)

    def y(v: float) -> float:
        return top + inner_h * (high - v) / (high - low)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{html.escape(title)}">',
             f'<rect x="{left}" y="{top}" width="{inner_w}" height="{inner_h}" fill="#fafafa" '
             'stroke="#ccc"/>',
             f'<text x="{left}" y="14" font-size="12">{html.escape(title)}</text>',
             f'<text x="{left - 4}" y="{top + 10}" font-size="10" text-anchor="end">{high:.3g}</text>',
             f'<text x="{left - 4}" y="{top + inner_h}" font-size="10" text-anchor="end">{low:.3g}</text>',
             f'<text x="{left + inner_w}" y="{height - 4}" font-size="10" text-anchor="end">'
             f'frame {count}</text>']
    parts += [f'<line x1="{x(b):.1f}" y1="{top}" x2="{x(b):.1f}" y2="{top + inner_h}" '
              'stroke="#999" stroke-dasharray="3,3"/>' for b in boundaries]
    legend = left + 160
    for label, points in series:
        colour = COLOURS[label]
        parts.append(f'<text x="{legend}" y="14" font-size="12" fill="{colour}">{label}</text>')
        legend += 60
        run: list[tuple[float, float]] = []
        for i, v in [*enumerate(points), (len(points), None)]:
            if v is not None and math.isfinite(v):
                run.append((x(i), y(v)))
                continue
            if len(run) > 1:
                line = " ".join(f"{px:.1f},{py:.1f}" for px, py in run)
                parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" '
                             'stroke-width="1.5"/>')
            elif run:  # a lone value (one frame, or one between gaps) shows as a dot
                parts.append(f'<circle cx="{run[0][0]:.1f}" cy="{run[0][1]:.1f}" r="2.5" '
                             f'fill="{colour}"/>')
            run = []
    parts.append("</svg>")
    return "".join(parts)


def _plots(comparison: Comparison) -> str:
    frames = comparison.frames
    boundaries, start = [], 0
    for result in comparison.inputs[:-1]:
        start += len(result.frames)
        boundaries.append(start)

    def both(field: str) -> list[tuple[str, list[float | None]]]:
        return [(label, [getattr(getattr(frame, side), field) for frame in frames])
                for label, side in (("from", "a"), ("to", "b"))]

    return "\n".join([
        _chart("SSIM of the two outputs around the faces", [("both", [f.ssim for f in frames])],
               boundaries),
        _chart("identity to the source face (cosine)", both("identity_source"), boundaries),
        _chart("identity to the original target face (cosine)", both("identity_target"),
               boundaries),
        _chart("landmark displacement (face sizes; gap: face not found)", both("displacement"),
               boundaries),
        _chart("time per frame (ms)", both("ms"), boundaries),
    ])


def _show(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else ("∞" if math.isinf(value) else f"{value:.{digits}f}")


def _pair(before: float | None, after: float | None, digits: int = 3, arrow: str = "→") -> str:
    return f"{_show(before, digits)} {arrow} {_show(after, digits)}"


def summary_line(summary: Summary) -> str:
    """One input's (or the total's) figures on a line, each from -> to: `ff compare`'s output."""
    a, b = summary.a, summary.b
    return (f"ssim {_show(summary.ssim)}, psnr {_show(summary.psnr, 1)} dB, "
            f"found {_pair(a.found, b.found, 2, '->')}, "
            f"landmarks {_pair(a.displacement, b.displacement, 3, '->')}, "
            f"identity to source {_pair(a.identity_source, b.identity_source, 3, '->')}, "
            f"{_pair(a.ms_per_frame, b.ms_per_frame, 1, '->')} ms/frame")


def _row(name: str, summary: Summary, css: str = "") -> str:
    a, b = summary.a, summary.b
    cells = [name, str(summary.frames), str(summary.faces), _pair(summary.ssim, summary.ssim_min),
             _show(summary.psnr, 1),
             _pair(a.found, b.found, 2), _pair(a.displacement, b.displacement),
             _pair(a.identity_source, b.identity_source), _pair(a.identity_target, b.identity_target),
             _pair(a.ms_per_frame, b.ms_per_frame, 1), f"{summary.slowdown:.2f}x"]
    return (f'<tr class="{css}">' if css else "<tr>") + "".join(
        f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>"


STYLE = """body{font-family:system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ddd;padding:4px 8px;
font-size:13px;text-align:right}td:first-child,th:first-child{text-align:left}
.total{font-weight:bold}.worse{color:#b00020}.ok{color:#2e7d32}
figure{display:inline-block;margin:0 12px 12px 0}
figcaption{font-size:12px;color:#555}img{display:block;width:192px}"""


def verdict(comparison: Comparison) -> str:
    """Whether B is worse, and each threshold it broke, as HTML: the report's and
    `ff ui`'s Compare page's first words."""
    a, b = comparison.a, comparison.b
    if not comparison.worse:
        return (f'<p class="ok"><b>{html.escape(b.version)} is not worse than '
                f"{html.escape(a.version)} beyond the thresholds</b></p>")
    return (f'<p class="worse"><b>{html.escape(b.version)} is worse than '
            f'{html.escape(a.version)}</b></p><ul>'
            + "".join(f"<li>{html.escape(f.message)}</li>" for f in comparison.failures)
            + "</ul>")


def metrics_table(comparison: Comparison) -> str:
    """The per-input and total figures as an HTML table (each cell from → to), the
    same in the report and on `ff ui`'s Compare page."""
    head = ["input", "frames", "faces", "SSIM mean → worst", "PSNR dB", "found", "landmark shift",
            "identity to source", "identity to target", "ms per frame", "slowdown"]
    rows = [_row(f"{result.path.name} ({result.kind})", result.summary)
            for result in comparison.inputs]
    rows.append(_row("total", comparison.total, "total"))
    return "\n".join(["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head)
                      + "</tr>", *rows, "</table>"])


def render_html(comparison: Comparison) -> str:
    a, b = comparison.a, comparison.b
    title = f"ff compare {comparison.module}: {a.model} {a.version} → {b.model} {b.version}"
    thresholds = ", ".join(f"{name} {limit:g}" for name in comparison.thresholds.names()
                           if (limit := getattr(comparison.thresholds, name)) is not None)
    samples = []
    for result in comparison.inputs:
        sample = result.sample
        if sample is None:
            continue
        figures = "".join(
            f'<figure><img src="{_png(image)}" alt="{label}"><figcaption>{label}</figcaption></figure>'
            for label, image in (("original", sample.original), (f"from {a.version}", sample.a),
                                 (f"to {b.version}", sample.b)))
        samples.append(f"<h3>{html.escape(result.path.name)}: frame {sample.index} "
                       f"(SSIM {sample.ssim:.3f}, its most changed)</h3>{figures}")
    return "\n".join([
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>provider {html.escape(b.provider)}; thresholds: {html.escape(thresholds)}</p>",
        verdict(comparison), "<h2>Per input</h2><p>each cell: from → to (SSIM: mean → worst "
        "frame)</p>", metrics_table(comparison), "<h2>Per frame</h2>", _plots(comparison),
        "<h2>Side by side</h2>", *samples, "</body></html>", ""])


def write_html(comparison: Comparison, path: Path) -> None:
    atomic_write(path, render_html(comparison).encode())
