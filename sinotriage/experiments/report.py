"""``report.md`` and a self-contained ``report.html`` from a study's ``results.json``.

Both show the same table, formatted by :func:`table_rows` (so the numbers in the report are the
numbers of results.json, rounded as stated in the table header); the HTML embeds its figures as
base64 PNG, so the single file opens anywhere.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from typing import Any

from sinotriage.experiments.learned import learned_markdown

Column = tuple[str, str, str]

#: the main table, one row per arm at the main training size: (title, key, format)
COLUMNS: tuple[Column, ...] = (
    ("Arm", "name", "text"),
    ("Input", "domain", "text"),
    ("Views", "views", "int"),
    ("Model", "model", "text"),
    ("AUC", "auc", "f3"),
    ("SD", "auc_sd", "f3"),
    ("Min", "auc_min", "f3"),
    ("Max", "auc_max", "f3"),
    ("95% CI", "auc_ci", "ci"),
    ("Sensitivity", "sensitivity", "f3"),
    ("Specificity", "specificity", "f3"),
    ("Accuracy", "accuracy", "f3"),
    ("Sens@Spec", "sens_at_spec", "f3"),
    ("ΔAUC vs ref", "delta_auc_vs_reference", "f3"),
    ("p vs ref", "p_vs_reference", "p"),
    ("Robust", "robust", "bool"),
    ("Train (s)", "train_seconds", "f1"),
)

#: the table of runs, one row per (arm, seed, size)
RUN_COLUMNS: tuple[Column, ...] = (
    ("Run", "name", "text"),
    ("Seed", "seed", "int"),
    ("Train studies", "n_train", "int"),
    ("AUC", "auc", "f3"),
    ("95% CI", "auc_ci", "ci"),
    ("Sensitivity", "sensitivity", "f3"),
    ("Specificity", "specificity", "f3"),
    ("Accuracy", "accuracy", "f3"),
    ("Sens@Spec", "sens_at_spec", "f3"),
    ("ΔAUC vs ref", "delta_auc_vs_reference", "f3"),
    ("p vs ref", "p_vs_reference", "p"),
    ("Train (s)", "train_seconds", "f1"),
)

#: the data-scaling table, one row per (arm, training size)
CURVE_COLUMNS: tuple[Column, ...] = (
    ("Arm", "arm", "text"),
    ("Train studies", "n_train", "int"),
    ("AUC", "auc", "f3"),
    ("95% CI", "auc_ci", "ci"),
    ("CI > 0.5", "clears", "bool"),
)

FIGURES: tuple[tuple[str, str], ...] = (
    ("roc", "ROC curves of all arms (test split, scan level, first seed)"),
    ("auc_vs_views", "AUC against the number of projections, with 95% DeLong confidence bands"),
    ("curve", "AUC against the number of training studies (mean over seeds, band: mean of the "
              "per-seed 95% DeLong intervals)"),
    ("example", "An example test study as each arm sees it"),
    ("queue", "Reading-queue simulation: waits of positive studies"),
    ("learned_windows", "Learned windows against the clinical brain, subdural and bone windows"),
    ("learned_filter", "Learned reconstruction filters against the ramp and the ramp x Hann start"),
)


def fmt(value: Any, kind: str) -> str:
    """Format one table cell (``f3``: 3 decimals, ``f1``: 1 decimal, ``p``: 3 decimals or
    ``<0.001``, ``ci``: ``lo–hi`` with 3 decimals, ``int``, ``text``, ``bool``: yes/no);
    None -> ``–``."""
    if value is None:
        return "–"
    if kind == "text":
        return str(value)
    if kind == "int":
        return str(int(value))
    if kind == "f3":
        return f"{float(value):.3f}"
    if kind == "f1":
        return f"{float(value):.1f}"
    if kind == "p":
        return "<0.001" if float(value) < 0.001 else f"{float(value):.3f}"
    if kind == "ci":
        lo, hi = value
        return f"{float(lo):.3f}–{float(hi):.3f}"
    if kind == "bool":
        return "yes" if value else "no"
    raise ValueError(f"unknown format kind {kind!r}")


def table_records(results: Mapping[str, Any], which: str = "arms") -> list[dict[str, Any]]:
    """The raw values behind a table: ``which`` is ``arms``, ``runs`` or ``curve``."""
    if which == "arms":
        return [{"name": name, **arm} for name, arm in results["arms"].items()]
    if which == "runs":
        return [{"name": name, **run} for name, run in results.get("runs", {}).items()]
    if which == "curve":
        curve = results.get("curve") or {"arms": {}}
        return [{"arm": name, **p} for name, arm in curve["arms"].items() for p in arm["points"]]
    raise ValueError(f"which must be arms, runs or curve, got {which!r}")


TABLES: dict[str, tuple[Column, ...]] = {"arms": COLUMNS, "runs": RUN_COLUMNS,
                                         "curve": CURVE_COLUMNS}


def table_rows(results: Mapping[str, Any], which: str = "arms") -> list[list[str]]:
    """A table as formatted strings (:func:`fmt`), one row per record of :func:`table_records`."""
    columns = TABLES[which]
    return [[fmt(rec.get(key), kind) for _, key, kind in columns]
            for rec in table_records(results, which)]


def plain_value(value: Any) -> str:
    """A cell with every digit (for logs): floats as ``repr``, intervals as ``lo..hi``."""
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return "..".join(plain_value(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def plain_table(results: Mapping[str, Any], which: str = "arms") -> str:
    """A table as plain text with full numbers, columns separated by two spaces."""
    columns = TABLES[which]
    rows = [[title for title, _, _ in columns]]
    rows += [[plain_value(rec.get(key)) for _, key, _ in columns]
             for rec in table_records(results, which)]
    widths = [max(len(r[j]) for r in rows) for j in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def _md_table(columns: tuple[Column, ...], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(c[0] for c in columns) + " |",
           "|" + "|".join("---" for _ in columns) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def curve_sentences(results: Mapping[str, Any]) -> list[str]:
    """One sentence per arm: the training size at which its CI lower bound first clears 0.5."""
    curve = results.get("curve")
    if not curve:
        return []
    out = []
    for name, arm in curve["arms"].items():
        largest = max((p["n_train"] for p in arm["points"]), default=0)
        if arm["first_clear"] is None:
            out.append(f"{name}: the 95% CI lower bound stays at or below 0.5 up to the largest "
                       f"size run ({largest} training studies).")
        else:
            out.append(f"{name}: the 95% CI lower bound first clears 0.5 at "
                       f"{arm['first_clear']} training studies.")
    return out


def _header_notes(results: Mapping[str, Any]) -> list[str]:
    s = results["study"]
    t = results["test"]
    lines = [
        f"sinotriage {results['sinotriage_version']}, created {results['created']} (UTC), "
        f"device `{results.get('device', 'cpu')}`.",
        f"Data: `{results.get('store')}` (preset `{s['data_preset']}`, "
        f"{s.get('difficulty', 'standard')} lesions, {s['n_studies']} studies, "
        f"seed {s['seed']}; full view count {results.get('full_views')}).",
        f"Test split: {t['n']} scans ({t['positives']} abnormal, {t['negatives']} normal). "
        f"Scan score = `{s['aggregation']}` of the slice scores.",
        f"Operating point: the highest threshold reaching sensitivity {s['operating_sensitivity']:g} "
        f"on the validation split, applied to the test split (Sensitivity, Specificity, Accuracy). "
        f"Sens@Spec: test sensitivity at specificity {s['fixed_specificity']:g}.",
        f"AUC 95% CI: DeLong (fast midrank algorithm); p vs ref: paired DeLong test against "
        f"`{s['reference_arm']}` on the same test scans, with the same seed and training size.",
        f"Training seeds {', '.join(str(x) for x in s.get('seeds', [s['seed']]))} (same data and "
        f"splits for every seed). Main table: training size "
        f"{s.get('main_size') or 'all'} ({_main_n(results)} training studies); AUC, SD, Min, Max: "
        f"mean, sample standard deviation and range of the per-seed test AUCs; 95% CI: mean of "
        f"the per-seed DeLong intervals; p vs ref: the largest per-seed p-value; Robust: "
        f"p < {s['alpha']:g} with the same sign of ΔAUC in every seed.",
    ]
    timing = results.get("timing", {})
    if timing:
        lines.append(
            f"Wall time: {timing.get('total_seconds', 0):.0f} s in total, "
            f"{timing.get('data_seconds', 0):.0f} s data synthesis and preprocessing, "
            f"{timing.get('train_seconds', 0):.0f} s training and prediction."
        )
    return lines


def _main_n(results: Mapping[str, Any]) -> Any:
    size = results["study"].get("main_size")
    return size if size is not None else results.get("n_train_studies")


def render_markdown(results: Mapping[str, Any], config_yaml: str = "") -> str:
    """report.md: the table, figure links (``figures/*.png``), the queue section and the config."""
    s = results["study"]
    out = [f"# sinotriage comparison study: {s['name']}", ""]
    out += [f"- {line}" for line in _header_notes(results)]
    for note in s.get("notes", []):
        out.append(f"- Note: {note}")
    out += ["", "## AUC table", ""]
    out += _md_table(COLUMNS, table_rows(results))
    out.append("")
    out.append("AUC, sensitivity, specificity, accuracy, ΔAUC: fractions, 3 decimals (means over "
               "seeds); train time: seconds of training and prediction, summed over seeds.")
    out += ["", "## Runs (per seed and training size)", ""]
    out += _md_table(RUN_COLUMNS, table_rows(results, "runs"))
    if results.get("curve"):
        out += ["", "## Data-scaling curve", ""]
        out += _md_table(CURVE_COLUMNS, table_rows(results, "curve"))
        out.append("")
        out += [f"- {line}" for line in curve_sentences(results)]
    if results.get("failed"):
        out += ["", "## Failed runs", "",
                "These runs raised (the traceback is in the run's `failed.txt`); a rerun of the "
                "same command retries them.", ""]
        out += [f"- `{name}`: {err}" for name, err in results["failed"].items()]
    out += ["", "## Figures", ""]
    for key, caption in FIGURES:
        if key in results.get("figures", {}):
            out.append(f"![{caption}]({results['figures'][key]})")
            out.append("")
            out.append(f"*{caption}.*")
            out.append("")
    section = learned_markdown(results["arms"])
    if section:
        out += [section]
    queue = results.get("queue")
    if queue:
        out += ["## Reading-queue simulation", "", queue["description"], "", queue["table"], ""]
    out += ["## Files", ""]
    for name, run in results.get("runs", {}).items():
        out.append(f"- `{run['predictions']}`: predictions of run {name} (validation and test, "
                   "slice and scan rows)")
    out.append("- `results.json`: every number of this report; `config.yaml`: the study config.")
    if config_yaml:
        out += ["", "## Configuration", "", "```yaml", config_yaml.rstrip(), "```"]
    return "\n".join(out) + "\n"


_CSS = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; font-size: .9em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: right; white-space: nowrap; }
th { background: #f2f4f7; } td.text { text-align: left; }
tr.ref td { background: #fffbe6; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-style: italic; color: #555; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; font-size: .85em; }
.notes li { margin: .2em 0; }
"""


def _md_table_to_html(table: str) -> str:
    lines = [ln for ln in table.splitlines() if ln.startswith("|")]
    if len(lines) < 2:
        return f"<pre>{html.escape(table)}</pre>"
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cells[0])
    body = "".join(
        "<tr>" + "".join(f"<td class='text'>{html.escape(c)}</td>" if j < 2 else
                         f"<td>{html.escape(c)}</td>" for j, c in enumerate(r)) + "</tr>"
        for r in cells[2:]
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_table(columns: tuple[Column, ...], rows: list[list[str]],
                highlight: list[bool] | None = None) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c[0])}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        cls = " class='ref'" if highlight and highlight[i] else ""
        cells = "".join(
            f"<td class='text'>{esc(v)}</td>" if columns[j][2] == "text" else f"<td>{esc(v)}</td>"
            for j, v in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(
    results: Mapping[str, Any], images: Mapping[str, bytes], config_yaml: str = ""
) -> str:
    """A self-contained report.html: figures embedded as base64 PNG data URIs."""
    s = results["study"]
    esc = html.escape
    parts = [
        "<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>sinotriage study: {esc(s['name'])}</title>", f"<style>{_CSS}</style></head><body>",
        f"<h1>sinotriage comparison study: {esc(s['name'])}</h1>", "<ul class='notes'>",
    ]
    parts += [f"<li>{esc(line)}</li>" for line in _header_notes(results)]
    parts += [f"<li><b>Note:</b> {esc(n)}</li>" for n in s.get("notes", [])]
    parts += ["</ul>", "<h2>AUC table</h2>"]
    ref_rows = [name == s["reference_arm"] for name in results["arms"]]
    parts.append(_html_table(COLUMNS, table_rows(results), ref_rows))
    parts.append("<p>AUC, sensitivity, specificity, accuracy, ΔAUC: fractions (means over seeds); "
                 "train time: seconds of training and prediction, summed over seeds; the "
                 "highlighted row is the reference arm.</p>")
    parts.append("<h2>Runs (per seed and training size)</h2>")
    parts.append(_html_table(RUN_COLUMNS, table_rows(results, "runs")))
    if results.get("curve"):
        parts.append("<h2>Data-scaling curve</h2>")
        parts.append(_html_table(CURVE_COLUMNS, table_rows(results, "curve")))
        parts.append("<ul>" + "".join(f"<li>{esc(x)}</li>" for x in curve_sentences(results))
                     + "</ul>")
    if results.get("failed"):
        parts.append("<h2>Failed runs</h2><ul>")
        parts += [f"<li><code>{esc(n)}</code>: {esc(e)}</li>" for n, e in results["failed"].items()]
        parts.append("</ul>")
    parts.append("<h2>Figures</h2>")
    for key, caption in FIGURES:
        if key in images:
            data = base64.b64encode(images[key]).decode("ascii")
            parts.append(f"<figure><img alt='{esc(caption)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{esc(caption)}.</figcaption></figure>")
    section = learned_markdown(results["arms"])
    if section:
        lines = section.splitlines()
        parts += [f"<h2>{esc(lines[0].lstrip('# '))}</h2>", f"<p>{esc(lines[2])}</p>",
                  _md_table_to_html(section)]
        parts += [f"<p>{esc(ln)}</p>" for ln in lines[3:] if ln and not ln.startswith("|")]
    queue = results.get("queue")
    if queue:
        parts += ["<h2>Reading-queue simulation</h2>", f"<p>{esc(queue['description'])}</p>",
                  _md_table_to_html(queue["table"])]
        extra = [ln for ln in queue["table"].splitlines() if ln and not ln.startswith("|")]
        parts += [f"<p>{esc(ln)}</p>" for ln in extra]
    parts.append("<h2>Files</h2><ul>")
    for name, run in results.get("runs", {}).items():
        parts.append(f"<li><code>{esc(run['predictions'])}</code>: predictions of run "
                     f"{esc(name)}</li>")
    parts.append("<li><code>results.json</code>: every number of this report; "
                 "<code>config.yaml</code>: the study config.</li></ul>")
    if config_yaml:
        parts += ["<h2>Configuration</h2>", f"<pre>{esc(config_yaml)}</pre>"]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


__all__ = ["COLUMNS", "CURVE_COLUMNS", "FIGURES", "RUN_COLUMNS", "TABLES", "curve_sentences", "fmt",
           "plain_table", "plain_value", "render_html", "render_markdown", "table_records",
           "table_rows"]
