"""`conformance report`: one self-contained HTML file (no network) from results files.

    write_report([Path("results/torch.jsonl")], Path("reports/index.html"),
                 baseline=[Path("results/old.jsonl")])

Jinja2 templates with autoescaping: everything a framework produced (names, messages,
details) is escaped. Plots are inline SVG; the small inline script (filtering) is optional
and pinned by a Content-Security-Policy hash, as is the stylesheet.
"""

from __future__ import annotations

import base64
import hashlib
import os
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from conformance import consistency
from conformance.diff import CATEGORIES, diff, fmt, load_cells
from conformance.report import behaviour, model, svg
from conformance.report.defaults_table import defaults_table

TEMPLATES = Path(__file__).with_name("templates")


def breakable(text: object) -> Markup:
    """Escaped text with line-break opportunities after '.', '_' and '(' (long API names)."""
    out = escape(str(text))
    for ch in "._(":
        out = out.replace(ch, Markup(ch + "<wbr>"))
    return out


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    env.filters["ratio"] = model.fmt_ratio
    env.filters["ratio_bar"] = svg.ratio_bar
    env.filters["histogram"] = svg.histogram
    env.filters["severity"] = model.severity
    env.filters["breakable"] = breakable
    return env


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _version() -> str:
    try:
        return metadata.version("logit-conformance")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_context(results: list[Path], baseline: list[Path] | None = None) -> dict[str, Any]:
    """Everything the template shows (raises ResultsError for a file that is not results)."""
    loaded = model.load(results)
    cells = loaded.cells
    groups = model.implementations(cells)
    cols = model.columns(cells)
    dtypes, ulp_rows = model.ulp_table(groups)
    reaction_cols, reaction_rows = behaviour.reaction_table(groups)
    misuse, scenarios = behaviour.misuse_rows(groups)
    defaults_columns, defaults_rows = defaults_table(c.record for c in cells)
    regression = None
    if baseline:
        base, base_notes = load_cells(baseline)
        regression = {
            "files": [os.fspath(p) for p in baseline],
            "diff": diff(base, [c.record for c in cells]),
            "notes": base_notes,
        }
    return {
        "version": _version(),
        "sources": loaded.sources,
        "notes": loaded.notes,
        "summary": model.summary(cells),
        "groups": groups,
        "columns": cols,
        "dtype_spans": model.dtype_spans(cols),
        "symbols": model.SYMBOLS,
        "ulp_dtypes": dtypes,
        "ulp_rows": ulp_rows,
        "special_tables": behaviour.special_tables(groups),
        "disagreements": behaviour.consistency_rows(
            consistency.disagreements([c.record for c in cells])
        ),
        "case_reasons": behaviour.case_reasons(),
        "reaction_cols": reaction_cols,
        "reaction_rows": reaction_rows,
        "misuse_rows": misuse,
        "scenarios": scenarios,
        "defaults_columns": defaults_columns,
        "defaults_rows": defaults_rows,
        "known": behaviour.known_findings(cells),
        "runs": behaviour.runs(cells),
        "regression": regression,
        "categories": CATEGORIES,
    }


def render_page(template: str, context: dict[str, Any]) -> str:
    """A template rendered with the report's stylesheet and script inline, pinned by a
    Content-Security-Policy (nothing else may load or run)."""
    style = (TEMPLATES / "style.css").read_text(encoding="utf-8")
    script = (TEMPLATES / "script.js").read_text(encoding="utf-8")
    context = context | {
        "version": _version(),
        "symbols": model.SYMBOLS,
        "style": Markup(style),
        "script": Markup(script),
        "csp": (
            f"default-src 'none'; style-src {_csp_hash(style)}; "
            f"script-src {_csp_hash(script)}; img-src data:; base-uri 'none'; form-action 'none'"
        ),
    }
    return _environment().get_template(template).render(context)


def render(results: list[Path], baseline: list[Path] | None = None) -> str:
    """The report as one HTML document."""
    return render_page("report.html.j2", build_context(results, baseline))


def write_report(results: list[Path], out: Path, baseline: list[Path] | None = None) -> None:
    """Write the HTML report of `results` (and a regression section against `baseline`)."""
    html = render([Path(p) for p in results], [Path(p) for p in baseline] if baseline else None)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)


__all__ = ["build_context", "render", "render_page", "write_report"]
