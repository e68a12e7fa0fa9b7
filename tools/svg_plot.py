#!/usr/bin/env python3
"""A small SVG writer (Python 3 standard library only): grouped bar charts.

    from svg_plot import bar_chart
    svg = bar_chart(
        groups=["pair/1", "batch32/1"],          # one cluster of bars each
        series=["tlcache", "malloc:jemalloc"],   # one bar (and colour) each
        values={("pair/1", "tlcache"): 1.9, ...},  # missing pairs: no bar
        title="ns per alloc+free pair", ylabel="ns", log=True)
    open("plot.svg", "w").write(svg)
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
