"""Reports carry what files and models wrote as text, never as markup: a results.json planted in the demo's folder
cannot put script in index.html, and a ``|`` in a value cannot break a table (issue 26, cases 11 and 12)."""

from __future__ import annotations

import json
import math

from cotdistill.report.demo import markdown_page, write_demo_report
from cotdistill.report.tables import markdown_table

PLANTED = "<img src=x onerror=alert(1)>"


def test_markdown_is_rendered_with_html_off():
    page = markdown_page("t", f"{PLANTED}\n\n<script>alert(2)</script>\n\n| a |\n|---|\n| <b>x</b> |\n")
    assert "<img" not in page and "<script" not in page and "<b>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<td>&lt;b&gt;x&lt;/b&gt;</td>" in page


def test_table_cells_escape_pipes_newlines_and_markup():
    rows = [{"bench": "a|b", "note": "two\nlines", "html": PLANTED, "path": "c:\\|d"}]
    table = markdown_table(rows)
    # "|" and "\" escaped by a backslash, a line break a space, "<" and ">" escaped so no renderer reads a tag
    assert table == ("| bench | note | html | path |\n|---|---|---|---|\n"
                     "| a\\|b | two lines | \\<img src=x onerror=alert(1)\\> | c:\\\\\\|d |\n")
    page = markdown_page("t", table)
    assert page.count("<td>") == 4 and "<td>a|b</td>" in page and "<td>c:\\|d</td>" in page
    assert "<td>&lt;img src=x onerror=alert(1)&gt;</td>" in page
    # a header from a file (a difficulty level becomes a column) is escaped the same way
    assert markdown_table([{"d|x": 1}]).splitlines()[0] == "| d\\|x |"


def test_a_planted_difficulty_level_is_text_in_the_demo_report(tmp_path):
    """The demo re-reads result files already in its folder; a by_difficulty key became script in index.html."""
    (tmp_path / "comparisons.json").write_text(json.dumps({"level": 0.05, "comparisons": []}))
    planted = {"accuracy": 0.5, "ci95": [0.1, 0.9], "accuracy_flexible": 0.5, "truncated_responses": 0, "n": 2,
               "by_difficulty": {PLANTED: 0.5, "2|3": 1.0}}
    corr = {"table": [], "spearman_teacher_share_vs_accuracy": math.nan, "n": 0}
    index = write_demo_report(tmp_path, {"teacher": planted}, [], {}, corr, [], [], 1.0)
    page = index.read_text()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<th>d2|3</th>" in page  # the header cell whole, not split into two columns


def test_trace_html_shows_model_and_file_text_as_text():
    """Kept so: every string a model or a samples file wrote is escaped on the provenance page."""
    from cotdistill.report.provenance import trace_html

    response = f"First {PLANTED}. Then <script>alert(2)</script>."
    samples = [{"prompt": "<b>bold?</b>", "response": response, "gold": "<i>7</i>", "correct": False}]
    rows = [{"sample": 0, "span": [0, 36], "category": "teacher", "p_teacher": 0.9, "p_student": 0.1,
             "p_distilled": 0.8}]
    page = trace_html(samples, rows, summary={"context": "<u>ctx</u>"})
    for tag in ("<img src=x", "<script", "<b>bold", "<i>7", "<u>ctx"):  # the page's own tags are fine
        assert tag not in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page and "gold &lt;i&gt;7&lt;/i&gt;" in page


def test_the_tradeoff_table_writes_flops_p_and_ratios_as_people_read_them():
    from cotdistill.figures import scientific
    from cotdistill.report.tables import TRADEOFF_COLUMNS

    assert scientific(11951138751168) == "1.2e13" and scientific(0) == "0" and scientific(9.96e12) == "1.0e13"
    row = {"setting": "lsp0.5", "flops": 5259022466112, "p_vs_ref": 3.944e-31, "retention": 0.0, "compute": 0.44005,
           "time_ratio": 0.3642, "diff_vs_ref": -0.34, "diff_ci95": [-0.3937, -0.2863], "retention_ci95": [0.0, 0.0],
           "accuracy": 0.0}
    cells = dict(zip(TRADEOFF_COLUMNS, markdown_table([row], TRADEOFF_COLUMNS).splitlines()[2].split(" | ")))
    assert cells["flops"] == "5.3e12" and cells["p_vs_ref"] == "\\< 0.001"
    assert (cells["compute"], cells["time_ratio"], cells["retention_ci95"]) == ("0.44", "0.36", "[0.00, 0.00]")
    assert (cells["diff_vs_ref"], cells["diff_ci95"], cells["accuracy"]) == ("-0.340", "[-0.394, -0.286]", "0.000")
    assert markdown_table([{"p_vs_ref": 0.0262}], ["p_vs_ref"]).splitlines()[2] == "| 0.026 |"
