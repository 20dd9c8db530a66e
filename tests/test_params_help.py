"""Every parameter is declared once and documented: `rlhf-nb params` shows a meaning for every key of every notebook
and profile (routine sections read trl's own help texts), and every routine section's field is a real argument of
the config class it wraps."""

from __future__ import annotations

import dataclasses

import pytest

from rlhf_nb.core.refs import import_ref
from rlhf_nb.notebook import params as params_module
from rlhf_nb.notebook.config import PROFILES, load_params
from rlhf_nb.notebook.display import params_rows
from rlhf_nb.run.runner import notebooks


@pytest.mark.parametrize("notebook", notebooks())
def test_every_key_of_every_profile_has_a_meaning(notebook):
    for profile in PROFILES:
        _, params = load_params(notebook, profile, {}, check_inputs=False)
        rows = params_rows(params, profile, notebook)
        assert rows
        missing = [r["key"] for r in rows if not str(r["meaning"]).strip()]
        assert not missing, f"{notebook} [{profile}]: no meaning for {missing}"
        assert {r["set by"] for r in rows} <= {f"params ({profile})", "paper", "routine"}


def test_a_routine_default_shows_the_value_that_wins():
    _, params = load_params("01_hh_preference_models", "cpu", {}, check_inputs=False)
    rows = {r["key"]: r for r in params_rows(params, "cpu", "01_hh_preference_models")}
    assert rows["dpo.learning_rate"]["set by"] == "paper" and rows["dpo.learning_rate"]["value"] == "5e-05"
    assert rows["dpo.per_device_train_batch_size"]["set by"] == "routine"
    assert rows["dpo.per_device_train_batch_size"]["value"].startswith("4 ")  # rlhf_nb.train.dpo's, not trl's 8
    assert "learning rate" in rows["dpo.learning_rate"]["meaning"].lower()  # trl's help text


@pytest.mark.parametrize("section", [params_module.DPOSection, params_module.GRPOSection, params_module.RewardSection,
                                     params_module.SFTSection])
def test_every_routine_field_is_an_argument_of_the_config_it_wraps(section):
    names = {f.name for f in dataclasses.fields(import_ref(section.routine))}
    unknown = sorted(set(section.model_fields) - {"extra"} - names)
    assert not unknown, f"{section.__name__}: {unknown} are not arguments of {section.routine}"


def test_tracking_passes_through_to_trl_and_is_off_by_default(tmp_path):
    from rlhf_nb.notebook.params import DPOSection

    off = DPOSection().build(str(tmp_path))
    assert off.report_to in ("none", [], ["none"])
    on = DPOSection(report_to="tensorboard").build(str(tmp_path))
    assert on.report_to in ("tensorboard", ["tensorboard"])
