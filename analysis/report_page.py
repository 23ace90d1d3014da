"""`commbench report`'s page: index.html with every section and figure embedded (one file
that opens offline), the figures also written beside it as PNG files."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from analysis.html_parts import esc, slug
from analysis.report_assets import CSS, LOAD_CHECK
from analysis.report_files import prepare_out_dir
from analysis.report_ops import op_section, ordered_ops
from analysis.report_runs import load_report_runs
from analysis.report_sections import (ceilings_html, environment_html, fleet_html, job_text,
                                      links_html, machine_html, method_html, render_backend,
                                      warnings_html)
from bench.core.safe_text import file_error
from bench.core.atomic_write import atomic_write_text

# pandas and matplotlib are imported inside functions (numpy too, in the figures): the CLI
# parser imports the report's command for every command.


def write_report(paths, out_dir=None, fit_missing=True) -> Path:
    """Write index.html and the PNG figures; return the path of index.html."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    runs = load_report_runs(paths, fit_missing)
    out_dir = prepare_out_dir(Path(out_dir) if out_dir else None, Path(paths[0]) / "report")
    ops = ordered_ops(runs)
    pngs: list = []
    sections = [op_section(op, runs, out_dir, pngs) for op in ops]
    nav = " ".join(f"<a href='#op-{esc(slug(op))}'>{esc(op)}</a>" for op in ops)
    nav += " <a href='#method'>method and units</a> <a href='#environment'>environment</a>"
    run_list = "".join(f"<li><b>{esc(r.label)}</b> — {esc(r.path)} — status "
                       f"{esc(r.meta.get('status', '?'))}, {esc(r.meta.get('nranks', '?'))} ranks, "
                       f"backend {esc(render_backend(r.meta))}{esc(job_text(r.meta))}</li>"
                       for r in runs)
    from bench import __version__

    written = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>commbench report: {esc(', '.join(r.label for r in runs))}</title>
<style>{CSS}</style></head>
<body>
<h1>commbench report</h1>
<p class="note">commbench {esc(__version__)}, written {esc(written)}</p>
<ul>{run_list}</ul>
{warnings_html(runs)}
{machine_html(runs)}
{ceilings_html(runs)}
<nav>{nav}</nav>
{''.join(sections)}
{links_html(runs, out_dir, pngs)}
{fleet_html(runs, out_dir, pngs)}
{method_html(runs)}
{environment_html(runs)}
{LOAD_CHECK}
</body></html>
"""
    index = out_dir / "index.html"
    try:
        atomic_write_text(index, page)
    except OSError as exc:
        raise file_error(index, exc, "write it") from None
    return index
