"""What a notebook shows: findings, claims with coloured verdicts, the params table, and less third-party noise.

:func:`quiet_third_party` installs *targeted* filters for messages known to be noise in this stack (each one
listed below with its reason); anything else still shows. It also turns off the per-call progress bars of
transformers' weight loading and of datasets' map/filter passes, which print one bar per trainer call; the
rlhf-nb bars (sampling, sandbox, training steps) stay.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

VERDICT_COLOURS = {"reproduced": "#c8e6c9", "not reproduced": "#ffcdd2", "inconclusive": "#fff3c4",
                   "not tested at this scale": "#e0e0e0"}

def _ipython_display(obj: Any) -> Any:
    try:
        from IPython.display import Markdown

        return Markdown(obj)
    except ImportError:  # pragma: no cover
        return obj


def finding(text: str) -> Any:
    """A computed one-sentence finding, shown as Markdown (plain text outside IPython)."""
    return _ipython_display(f"**Finding.** {text}")


def smoke_banner() -> None:
    """Say loudly that a smoke run's model has random weights: its numbers test the plumbing only."""
    message = ("profile smoke: the model is a tiny network with RANDOM weights built locally; replies are gibberish and "
               "every number below tests the plumbing only, not the science. Use profile cpu or gpu for results.")
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display

        if get_ipython() is not None:
            display(HTML(f'<div style="background:#fff3c4;border-left:4px solid #f0a500;padding:6px 10px">'
                         f"<b>Smoke run.</b> {html.escape(message[15:])}</div>"))
            return
    except ImportError:  # pragma: no cover
        pass
    print(message)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return f"[{value[0]:.3g}, {value[1]:.3g}]"
    return str(value)


def claims_frame(claims: Sequence[Any]):
    """A DataFrame of claim records: one row each, premises that fail marked."""
    import pandas as pd

    rows = []
    for c in claims:
        rows.append({
            "id": c.id, "claim": c.statement, "kind": c.kind, "paper": c.paper_value, "ours": c.our_value,
            "effect": _fmt(c.effect), "95% CI": _fmt(c.ci), "p_adj": _fmt(c.p_adj), "n": c.n, "seeds": c.seeds,
            "MDE": _fmt(c.mde), "min effect": f"{_fmt(c.min_effect)} ({c.min_effect_reason})", "unit": c.unit,
            "premises": "; ".join(("✓ " if p.holds else "✗ ") + p.name + (f": {p.detail}" if p.detail and not p.holds
                                                                           else "") for p in c.premises),
            "verdict": c.verdict,
        })
    return pd.DataFrame(rows)


def claims_table(claims: Sequence[Any]) -> Any:
    """Claims rendered in full (no truncated cells) with coloured verdicts."""
    frame = claims_frame(claims)
    try:
        styler = frame.style.map(lambda v: f"background-color: {VERDICT_COLOURS.get(v, '')}", subset=["verdict"])
        return styler.set_properties(**{"white-space": "pre-wrap", "text-align": "left"}).hide(axis="index")
    except (ImportError, AttributeError):  # pragma: no cover - jinja2 missing
        return frame


def params_rows(params: Any, profile: str, notebook: str) -> list[dict[str, Any]]:
    """(key, value, set by, meaning) for every parameter. "set by" names the layer whose value wins: the profile's
    YAML (``params (cpu)``), else the paper's ``params.py`` (``paper``), else, for a routine section's field left at
    None, the routine's config class (``routine``: rlhf-nb's default where it restates trl's, else trl's)."""
    from rlhf_nb.notebook.config import raw_params
    from rlhf_nb.notebook.params import describe

    try:
        raw = raw_params(notebook, profile)
    except Exception:  # noqa: BLE001 - display only
        raw = {}

    def given(key: str) -> bool:
        node: Any = raw
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    def source(row: dict[str, Any]) -> str:
        if given(row["key"]):
            return f"params ({profile})"
        if isinstance(row["value"], str) and row["value"].endswith("(routine default)"):
            return "routine"
        return "paper"

    return [{"key": r["key"], "value": _fmt(r["value"]) if not isinstance(r["value"], str) else r["value"],
             "set by": source(r), "meaning": r["meaning"]} for r in describe(params)]


def params_html(params: Any, profile: str, notebook: str) -> str:
    import pandas as pd

    frame = pd.DataFrame(params_rows(params, profile, notebook))
    return (f"<b>{html.escape(notebook)}</b> · profile <code>{html.escape(profile)}</code>"
            + frame.to_html(index=False, escape=True))
