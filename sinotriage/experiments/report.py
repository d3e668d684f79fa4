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

#: table columns: (title, key in the arm record, format)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("Arm", "name", "text"),
    ("Input", "domain", "text"),
    ("Views", "views", "int"),
    ("Model", "model", "text"),
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

FIGURES: tuple[tuple[str, str], ...] = (
    ("roc", "ROC curves of all arms (test split, scan level)"),
    ("auc_vs_views", "AUC against the number of projections, with 95% DeLong confidence bands"),
    ("example", "An example test study as each arm sees it"),
    ("queue", "Reading-queue simulation: waits of positive studies"),
    ("learned_windows", "Learned windows against the clinical brain, subdural and bone windows"),
    ("learned_filter", "Learned reconstruction filters against the ramp and the ramp x Hann start"),
)


def fmt(value: Any, kind: str) -> str:
    """Format one table cell (``f3``: 3 decimals, ``f1``: 1 decimal, ``p``: 3 decimals or
    ``<0.001``, ``ci``: ``lo–hi`` with 3 decimals, ``int``, ``text``); None -> ``–``."""
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
    raise ValueError(f"unknown format kind {kind!r}")


def table_rows(results: Mapping[str, Any]) -> list[list[str]]:
    """The AUC table as formatted strings, one row per arm in results order."""
    rows = []
    for name, arm in results["arms"].items():
        rec = {"name": name, **arm}
        rows.append([fmt(rec.get(key), kind) for _, key, kind in COLUMNS])
    return rows


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
        f"`{s['reference_arm']}` on the same test scans.",
    ]
    timing = results.get("timing", {})
    if timing:
        lines.append(
            f"Wall time: {timing.get('total_seconds', 0):.0f} s in total, "
            f"{timing.get('data_seconds', 0):.0f} s data synthesis and preprocessing, "
            f"{timing.get('train_seconds', 0):.0f} s training and prediction."
        )
    return lines


def render_markdown(results: Mapping[str, Any], config_yaml: str = "") -> str:
    """report.md: the table, figure links (``figures/*.png``), the queue section and the config."""
    s = results["study"]
    out = [f"# sinotriage comparison study: {s['name']}", ""]
    out += [f"- {line}" for line in _header_notes(results)]
    for note in s.get("notes", []):
        out.append(f"- Note: {note}")
    out += ["", "## AUC table", ""]
    out.append("| " + " | ".join(c[0] for c in COLUMNS) + " |")
    out.append("|" + "|".join("---" for _ in COLUMNS) + "|")
    for row in table_rows(results):
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    out.append("AUC, sensitivity, specificity, accuracy, ΔAUC: fractions, 3 decimals; "
               "train time: seconds of training and prediction per arm.")
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
    for name, arm in results["arms"].items():
        out.append(f"- `{arm['predictions']}`: predictions of arm {name} (validation and test, "
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
    parts += ["</ul>", "<h2>AUC table</h2>", "<table><thead><tr>"]
    parts += [f"<th>{esc(c[0])}</th>" for c in COLUMNS]
    parts.append("</tr></thead><tbody>")
    for name, row in zip(results["arms"], table_rows(results), strict=True):
        cls = " class='ref'" if name == s["reference_arm"] else ""
        cells = "".join(
            f"<td class='text'>{esc(v)}</td>" if COLUMNS[j][2] == "text" else f"<td>{esc(v)}</td>"
            for j, v in enumerate(row)
        )
        parts.append(f"<tr{cls}>{cells}</tr>")
    parts.append("</tbody></table>")
    parts.append("<p>AUC, sensitivity, specificity, accuracy, ΔAUC: fractions; train time: seconds "
                 "of training and prediction per arm; the highlighted row is the reference arm.</p>")
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
    for name, arm in results["arms"].items():
        parts.append(f"<li><code>{esc(arm['predictions'])}</code>: predictions of arm {esc(name)}</li>")
    parts.append("<li><code>results.json</code>: every number of this report; "
                 "<code>config.yaml</code>: the study config.</li></ul>")
    if config_yaml:
        parts += ["<h2>Configuration</h2>", f"<pre>{esc(config_yaml)}</pre>"]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


__all__ = ["COLUMNS", "FIGURES", "fmt", "render_html", "render_markdown", "table_rows"]
