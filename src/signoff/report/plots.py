"""The report's figures as SVG written by hand (the curve data is :mod:`signoff.stats.curves`).

Everything here is deterministic (fixed decimals, no timestamps, no random ids) so the same
data gives the same bytes. The SVGs are small (curves are downsampled before they get here),
scale to the width of a phone (``viewBox``, no fixed size) and need no script or external
asset. Text is XML-escaped; each builder returns one ``<svg>`` element as a string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape, quoteattr

__all__ = ["bar_chart_svg", "confusion_svg", "curve_svg"]

_COLORS = ("#1f5fa8", "#c2571a", "#2e7d32", "#6a3d9a")
_DASHES = ("", "6 3", "2 2", "8 2 2 2")
_SVG_NS = "http://www.w3.org/2000/svg"

Point = tuple[float, float]


# --- SVG ---------------------------------------------------------------------------------


def _num(value: float) -> str:
    text = f"{value:.1f}"
    return "0" if text in ("0.0", "-0.0") else text.removesuffix(".0")


def _text(x: float, y: float, body: str, **attrs: str) -> str:
    extra = "".join(f" {k.replace('_', '-')}={quoteattr(v)}" for k, v in sorted(attrs.items()))
    return f'<text x="{_num(x)}" y="{_num(y)}"{extra}>{escape(body)}</text>'


def _open(width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg xmlns="{_SVG_NS}" viewBox="0 0 {width} {height}" role="img" '
        f'font-family="sans-serif" font-size="11" class="plot">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
    ]


def curve_svg(
    title: str,
    series: Sequence[tuple[str, Sequence[Sequence[float]]]],
    *,
    x_label: str,
    y_label: str,
    diagonal: bool = False,
) -> str:
    """A line chart on the unit square: one polyline per ``(legend, points)`` series."""
    left, top, size_x, size_y = 48.0, 24.0, 260.0, 190.0
    width, height = 320, int(top + size_y + 36 + 15 * len(series))

    def at(x: float, y: float) -> str:
        return f"{_num(left + x * size_x)},{_num(top + (1.0 - y) * size_y)}"

    parts = _open(width, height, title)
    parts.append(_text(left, 15, title, font_weight="bold"))
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        gx, gy = left + tick * size_x, top + (1.0 - tick) * size_y
        parts.append(
            f'<path d="M{_num(left)} {_num(gy)}H{_num(left + size_x)}'
            f'M{_num(gx)} {_num(top)}V{_num(top + size_y)}" stroke="#e3e3e3"/>'
        )
        parts.append(_text(left - 4, gy + 4, f"{tick:g}", text_anchor="end"))
        parts.append(_text(gx, top + size_y + 13, f"{tick:g}", text_anchor="middle"))
    parts.append(
        f'<rect x="{_num(left)}" y="{_num(top)}" width="{_num(size_x)}" '
        f'height="{_num(size_y)}" fill="none" stroke="#888"/>'
    )
    if diagonal:
        parts.append(f'<path d="M{at(0, 0)}L{at(1, 1)}" stroke="#aaa" stroke-dasharray="3 3"/>')
    parts.append(_text(left + size_x / 2, top + size_y + 27, x_label, text_anchor="middle"))
    mid = _num(top + size_y / 2)
    parts.append(
        _text(
            11, top + size_y / 2, y_label, text_anchor="middle", transform=f"rotate(-90 11 {mid})"
        )
    )
    for i, (legend, points) in enumerate(series):
        color, dash = _COLORS[i % len(_COLORS)], _DASHES[i % len(_DASHES)]
        coords = " ".join(at(float(p[0]), float(p[1])) for p in points)
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"{dashed}/>'
        )
        ly = top + size_y + 44 + 15 * i
        parts.append(
            f'<path d="M{_num(left)} {_num(ly - 4)}h22" stroke="{color}" stroke-width="2"{dashed}/>'
        )
        parts.append(_text(left + 28, ly, legend))
    parts.append("</svg>")
    return "".join(parts)


def confusion_svg(title: str, counts: dict[str, Any]) -> str:
    """A 2x2 confusion matrix (rows: actual, columns: predicted), shaded by count."""
    width, height = 240, 200
    cells = (("tn", 0, 0), ("fp", 0, 1), ("fn", 1, 0), ("tp", 1, 1))
    total = max(1, sum(int(counts[k]) for k, _, _ in cells))
    left, top, cell = 80.0, 50.0, 70.0
    parts = _open(width, height, title)
    parts.append(_text(8, 15, title, font_weight="bold"))
    parts.append(_text(left + cell, 38, "predicted", text_anchor="middle"))
    parts.append(_text(left + cell / 2, top - 2, "0", text_anchor="middle"))
    parts.append(_text(left + 1.5 * cell, top - 2, "1", text_anchor="middle"))
    parts.append(_text(8, top + cell + 4, "actual"))
    parts.append(_text(left - 8, top + cell / 2 + 4, "0", text_anchor="end"))
    parts.append(_text(left - 8, top + 1.5 * cell + 4, "1", text_anchor="end"))
    for key, row, col in cells:
        value = int(counts[key])
        share = value / total
        x, y = left + col * cell, top + row * cell
        parts.append(
            f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(cell)}" height="{_num(cell)}" '
            f'fill="#1f5fa8" fill-opacity="{0.08 + 0.8 * share:.2f}" stroke="#fff"/>'
        )
        ink = "#fff" if share > 0.45 else "#111"
        parts.append(
            _text(
                x + cell / 2, y + cell / 2, f"{key.upper()} {value}", text_anchor="middle", fill=ink
            )
        )
        parts.append(
            _text(x + cell / 2, y + cell / 2 + 14, f"{share:.1%}", text_anchor="middle", fill=ink)
        )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart_svg(
    title: str, bars: Sequence[tuple[str, float]], *, highlight: str | None = None
) -> str:
    """Horizontal bars, one per ``(label, value)``, with the value printed; ``highlight``
    names the bar drawn in the accent colour (the winner)."""
    row, label_w, bar_w = 20, 130.0, 140.0
    width, height = 330, 30 + row * max(1, len(bars))
    values = [float(v) for _, v in bars]
    low, high = min([0.0, *values]), max([0.0, *values])
    span = (high - low) or 1.0
    zero = label_w + (0.0 - low) / span * bar_w
    parts = _open(width, height, title)
    parts.append(_text(4, 15, title, font_weight="bold"))
    for i, (label, value) in enumerate(bars):
        y = 24 + i * row
        x0 = label_w + (min(0.0, value) - low) / span * bar_w
        w = abs(value) / span * bar_w
        color = _COLORS[1] if label == highlight else _COLORS[0]
        short = label if len(label) <= 20 else label[:19] + "…"
        parts.append(_text(label_w - 4, y + 12, short, text_anchor="end"))
        parts.append(
            f'<rect x="{_num(x0)}" y="{y + 2}" width="{_num(w)}" height="{row - 6}" '
            f'fill="{color}"/>'
        )
        parts.append(_text(label_w + bar_w + 4, y + 12, f"{value:.4g}"))
    parts.append(f'<path d="M{_num(zero)} 22V{_num(24 + row * max(1, len(bars)))}" stroke="#888"/>')
    parts.append("</svg>")
    return "".join(parts)
