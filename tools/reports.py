"""The campaign's reports: report.md, a self-contained report.html, report.json
and coverage.svg (coverage and corpus size over time, a curve per target)."""

import html
import json

import svg_plot

def write_reports(out, meta, targets, crashes):
    def target_row(t):
        first = t.series[0] if t.series else {}
        last = t.series[-1] if t.series else {}
        unique = [c for c in crashes if c.target is t]
        return {
            "target": t.name,
            "backend": t.backend,
            "fuzzer": t.fuzzer,
            "sanitizer": t.sanitizer,
            "config": t.config,
            "mutant": t.mutant,
            "workers": t.workers,
            "execs": last.get("execs", 0),
            "exec_per_s": t.status.get("exec_s", 0),
            "coverage_start": first.get("cov"),
            "coverage": last.get("cov"),
            "features": last.get("ft"),
            "corpus_start": t.corpus_start,
            "corpus_end": t.corpus_end,
            "corpus_after_merge": t.corpus_merged,
            "corpus_dir": str(t.corpus),
            "crash_inputs": t.crash_inputs,
            "unique_crashes": len(unique),
            "new_crashes": sum(c.new for c in unique),
            "problem": t.problem,
            "series": t.series,
        }

    rows = [target_row(t) for t in targets]
    crash_rows = [{
        "id": c.id,
        "target": c.target.name,
        "config": c.target.config,
        "mutant": c.target.mutant,
        "class": c.kind,
        "frames": c.frames,
        "new": c.new,
        "first_seen": c.first_seen,
        "inputs": len(c.inputs),
        "reproduced": c.reproduced,
        "minimized": c.minimized,
        "input": str(c.input),
        "reproduce": c.reproduce,
    } for c in crashes]
    report = dict(meta, targets=rows, crashes=crash_rows)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")

    names = [t.label for t in targets]
    svg = svg_plot.line_panels(
        f"poolguard fuzzing campaign, {meta['started']}",
        [("coverage (edges)", "seconds", {t.label: [(p["t"], p["cov"]) for p in t.series]
                                          for t in targets}),
         ("corpus (inputs)", "seconds", {t.label: [(p["t"], p["corpus"]) for p in t.series]
                                         for t in targets})],
        names)
    (out / "coverage.svg").write_text(svg)

    fmt = lambda v: "-" if v is None else str(v)
    table = ["| target | sanitizer | workers | execs | exec/s | coverage | corpus start → end → merged "
             "| crash inputs | unique (new) |", "|---|---|---|---|---|---|---|---|---|"]
    for r, t in zip(rows, targets):
        table.append(f"| {t.label} | {r['sanitizer']} | {r['workers']} | {r['execs']} | "
                     f"{r['exec_per_s']} | {fmt(r['coverage_start'])} → {fmt(r['coverage'])} | "
                     f"{r['corpus_start']} → {fmt(r['corpus_end'])} → "
                     f"{fmt(r['corpus_after_merge'])} | {r['crash_inputs']} | "
                     f"{r['unique_crashes']} ({r['new_crashes']}) |")
    crash_md = []
    for c in crashes:
        status = "new" if c.new else f"known since {c.first_seen}"
        crash_md.append(f"### `{c.kind}` in {c.target.label} ({status})\n\n"
                        f"- signature `{c.id}`: {' ← '.join(c.frames) or '(no poolguard frame)'}\n"
                        f"- {len(c.inputs)} input(s); stored {'minimized' if c.minimized else 'as found'}:"
                        f" `{c.input}`\n- reproduce: `{c.reproduce}`\n")
    md = (f"# Fuzzing campaign {meta['started']}\n\n"
          f"{meta['minutes']} min per target, {meta['jobs']} fuzzing process(es), stopped by "
          f"{meta['stopped_by']}. Corpora in `{meta['corpus_root']}`.\n\n" + "\n".join(table) +
          "\n\n![coverage and corpus over time](coverage.svg)\n\n## Crashes\n\n" +
          ("\n".join(crash_md) if crash_md else "None.\n"))
    (out / "report.md").write_text(md)

    esc = html.escape
    html_rows = "".join(
        f"<tr><td>{esc(t.label)}</td><td>{r['sanitizer']}</td><td>{r['workers']}</td>"
        f"<td>{r['execs']}</td><td>{r['exec_per_s']}</td>"
        f"<td>{fmt(r['coverage_start'])} → {fmt(r['coverage'])}</td>"
        f"<td>{r['corpus_start']} → {fmt(r['corpus_end'])} → {fmt(r['corpus_after_merge'])}</td>"
        f"<td>{r['crash_inputs']}</td><td>{r['unique_crashes']} ({r['new_crashes']})</td></tr>"
        for r, t in zip(rows, targets))
    html_crashes = "".join(
        f"<h3><code>{esc(c.kind)}</code> in {esc(c.target.label)} "
        f"({'new' if c.new else 'known since ' + esc(str(c.first_seen))})</h3>"
        f"<p>signature <code>{c.id}</code>: {esc(' ← '.join(c.frames))}<br>"
        f"{len(c.inputs)} input(s); reproduce:</p><pre>{esc(c.reproduce or '')}</pre>"
        for c in crashes) or "<p>None.</p>"
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>poolguard fuzzing "
            f"{esc(meta['started'])}</title><style>body{{font-family:sans-serif;margin:2em}}"
            f"table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}"
            f"pre{{background:#f4f4f4;padding:8px;white-space:pre-wrap}}</style></head><body>"
            f"<h1>Fuzzing campaign {esc(meta['started'])}</h1><p>{meta['minutes']} min per target, "
            f"{meta['jobs']} fuzzing process(es), stopped by {esc(meta['stopped_by'])}.</p>"
            f"<table><tr><th>target</th><th>sanitizer</th><th>workers</th><th>execs</th>"
            f"<th>exec/s</th><th>coverage</th><th>corpus start → end → merged</th>"
            f"<th>crash inputs</th><th>unique (new)</th></tr>{html_rows}</table>"
            f"{svg}<h2>Crashes</h2>{html_crashes}</body></html>\n")
    (out / "report.html").write_text(page)


