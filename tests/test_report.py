"""The committed REPORT.md and figures are what the current code computes from the shipped results in results/."""

from __future__ import annotations

import re

from conftest import REPO

from rlhf_nb.run import report as report_module
from rlhf_nb.run import runner


def test_every_notebook_ships_its_cpu_results():
    shipped = report_module.saved_runs(REPO, "cpu")
    assert [p.parent.name for p in shipped] == runner.notebooks(REPO)
    for run in shipped:
        assert sorted(p.name for p in run.iterdir()) == ["env.json", "params.yaml", "results.json.gz"], run
        assert report_module.load_results(run)["profile"] == "cpu"


def test_committed_report_is_what_the_current_code_writes_from_the_shipped_results(tmp_path):
    out = report_module.report(root=REPO, profile="cpu", out=tmp_path / "REPORT.md")
    text = out.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links and all(link.startswith("figures/") and (REPO / link).is_file() for link in links), links
    assert text == (REPO / "REPORT.md").read_text(), (
        "REPORT.md is not what the current code computes from results/: regenerate it with "
        "`rlhf-nb figures --profile cpu && rlhf-nb report --profile cpu` and commit it")


def test_figures_for_cpu_are_drawn_from_the_shipped_results_alone(tmp_path):
    written = report_module.figures(root=REPO, profile="cpu", out=tmp_path)
    assert written and all(tmp_path in p.parents for p in written)  # nothing is written beside the shipped results
    for nb in runner.notebooks(REPO):
        drawn = sorted(p.name for p in (tmp_path / nb).glob("*.png"))
        assert drawn and drawn == sorted(p.name for p in (REPO / "figures" / nb).glob("*.png")), nb


def test_every_notebook_says_which_findings_and_tables_the_report_recomputes():
    """Each paper lists its notebook's findings and tables for the report (a paper without them would have the
    report print what its run cached, and the smoke runs' equality check would pass without checking anything)."""
    from rlhf_nb.notebook.registry import notebooks, readers_function

    missing = [(nb, part) for nb in notebooks() for part in ("findings", "tables")
               if readers_function(nb, part) is None]
    assert not missing, missing
