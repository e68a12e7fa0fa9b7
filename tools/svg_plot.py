"""Self-contained SVG charts, written with the Python 3 standard library only.

No plotting package is installed on these machines (and none is needed): an
SVG is a text file every browser and image viewer opens. Two charts:

    from svg_plot import bar_chart, line_panels
    svg = bar_chart(
        groups=["pair/1", "batch32/1"],          # one cluster of bars each
        series=["tlcache", "malloc:jemalloc"],   # one bar (and colour) each
        values={("pair/1", "tlcache"): 1.9, ...},  # missing pairs: no bar
        title="ns per alloc+free pair", ylabel="ns", log=True)
    svg = line_panels("campaign", [("coverage", "seconds", {"t1": [(0, 5), (9, 7)]})], ["t1"])

bar_chart serves //tools:bench, line_panels the fuzzing campaign report.
"""

import math
from xml.sax.saxutils import escape

PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939",
]


def bar_chart(groups, series, values, title="", ylabel="", log=False,
              width=None, height=420):
    """Returns an SVG document: for each group, one bar per series with a value."""
    bar_w = 9
    group_w = bar_w * len(series) + 14
    left, right, top, bottom = 70, 190, 40, 90
    width = width or left + right + group_w * max(1, len(groups))
    plot_h = height - top - bottom
    vals = [v for v in values.values() if v is not None and v > 0]
    vmax = max(vals) if vals else 1.0
    vmin = min(vals) if vals else 1.0
    if log:
        lo = 10 ** math.floor(math.log10(vmin))
        hi = 10 ** math.ceil(math.log10(vmax))
        if hi <= lo:
            hi = lo * 10

        def y_of(v):
            return top + plot_h * (1 - (math.log10(v) - math.log10(lo)) /
                                   (math.log10(hi) - math.log10(lo)))
        ticks = []
        t = lo
        while t <= hi * 1.0001:
            ticks.append(t)
            t *= 10
    else:
        lo, hi = 0.0, vmax * 1.1

        def y_of(v):
            return top + plot_h * (1 - (v - lo) / (hi - lo))
        step = 10 ** math.floor(math.log10(hi / 5)) if hi > 0 else 1
        ticks = [i * step for i in range(int(hi / step) + 1)]

    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
        'font-family="sans-serif" font-size="11">' % (width, height),
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="%d" y="22" font-size="14">%s</text>' % (left, escape(title)),
        '<text x="14" y="%d" transform="rotate(-90 14 %d)">%s</text>'
        % (top + plot_h // 2, top + plot_h // 2, escape(ylabel)),
    ]
    for t in ticks:
        y = y_of(t)
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>'
                   % (left, width - right, y, y))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>'
                   % (left - 4, y + 4, ("%g" % t)))
    for gi, group in enumerate(groups):
        x0 = left + gi * group_w + 7
        for si, name in enumerate(series):
            v = values.get((group, name))
            if v is None or v <= 0:
                continue
            y = y_of(max(v, lo if log else 0))
            out.append('<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s">'
                       '<title>%s %s: %.3g</title></rect>'
                       % (x0 + si * bar_w, y, bar_w - 1, top + plot_h - y,
                          PALETTE[si % len(PALETTE)], escape(group), escape(name), v))
        cx = x0 + group_w / 2 - 7
        out.append('<text x="%.1f" y="%d" text-anchor="end" '
                   'transform="rotate(-40 %.1f %d)">%s</text>'
                   % (cx, top + plot_h + 14, cx, top + plot_h + 14, escape(group)))
    out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="black"/>'
               % (left, width - right, top + plot_h, top + plot_h))
    for si, name in enumerate(series):
        y = top + 10 + si * 16
        out.append('<rect x="%d" y="%d" width="10" height="10" fill="%s"/>'
                   % (width - right + 12, y, PALETTE[si % len(PALETTE)]))
        out.append('<text x="%d" y="%d">%s</text>'
                   % (width - right + 28, y + 9, escape(name)))
    out.append("</svg>")
    return "\n".join(out) + "\n"


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
