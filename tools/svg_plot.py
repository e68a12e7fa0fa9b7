"""Self-contained SVG charts, written with the standard library only.

No plotting package is installed on these machines (and none is needed): an
SVG is a text file every browser and image viewer opens.
"""

from xml.sax.saxutils import escape

# Distinguishable on white, in order (Tableau 10).
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac"]


def _nice_max(value):
    """A round axis maximum at or above `value`."""
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _number(value):
    if value >= 10000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def line_panels(title, panels, series_names, width=1000, panel_height=260):
    """Stacked line charts sharing one legend.

    Args:
      title: the figure's title.
      panels: a list of (y label, x label, {series name: [(x, y), ...]}).
      series_names: every series, in legend order (one colour each).
    Returns:
      The SVG document as a string.
    """
    left, right, top, gap = 70, 20, 40, 60
    legend_rows = (len(series_names) + 1) // 2
    # Below the last panel's axis label.
    legend_y = top + len(panels) * (panel_height + gap) - gap + 56
    height = legend_y + 18 * legend_rows + 10
    colour = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(series_names)}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="16">{escape(title)}</text>']
    plot_w = width - left - right
    for index, (y_label, x_label, series) in enumerate(panels):
        y0 = top + index * (panel_height + gap)
        points = [p for values in series.values() for p in values]
        x_max = _nice_max(max((p[0] for p in points), default=1))
        y_max = _nice_max(max((p[1] for p in points), default=1))
        sx = lambda x: left + plot_w * x / x_max
        sy = lambda y: y0 + panel_height - panel_height * y / y_max
        out.append(f'<rect x="{left}" y="{y0}" width="{plot_w}" height="{panel_height}" '
                   f'fill="none" stroke="#888"/>')
        for i in range(6):
            xv, yv = x_max * i / 5, y_max * i / 5
            out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(yv):.1f}" y2="{sy(yv):.1f}" '
                       f'stroke="#eee"/>')
            out.append(f'<text x="{left - 6}" y="{sy(yv) + 4:.1f}" text-anchor="end">'
                       f'{_number(yv)}</text>')
            out.append(f'<text x="{sx(xv):.1f}" y="{y0 + panel_height + 16}" text-anchor="middle">'
                       f'{_number(xv)}</text>')
        out.append(f'<text x="{left + plot_w / 2}" y="{y0 + panel_height + 32}" '
                   f'text-anchor="middle">{escape(x_label)}</text>')
        out.append(f'<text transform="translate(16 {y0 + panel_height / 2}) rotate(-90)" '
                   f'text-anchor="middle">{escape(y_label)}</text>')
        for name in series_names:
            values = sorted(series.get(name, []))
            if not values:
                continue
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values)
            out.append(f'<polyline fill="none" stroke="{colour[name]}" stroke-width="2" '
                       f'points="{path}"><title>{escape(name)}</title></polyline>')
    for i, name in enumerate(series_names):
        x = left + (i % 2) * plot_w / 2
        y = legend_y + 18 * (i // 2)
        out.append(f'<rect x="{x}" y="{y - 9}" width="14" height="4" fill="{colour[name]}"/>')
        out.append(f'<text x="{x + 20}" y="{y - 4}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
