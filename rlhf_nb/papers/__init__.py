"""One folder per paper, each with the same five modules (the quickstart, which makes no claims, has no readers or
claims):

* ``params.py`` - ``Params``: the notebook's parameters (pydantic, nested sections built from the routines'
  configs, see :mod:`rlhf_nb.notebook.params`); ``params/NN_name.yaml`` holds only overrides of its defaults.
* ``steps.py`` - the experiment's steps: functions that take parameters and data and return typed results,
  never mutating their inputs.
* ``readers.py`` - pure functions over a saved ``results.json``: accessors (the matrix of outcomes, the snapshots,
  the arms, ...) and the notebook's findings (``finding_*``: sentences) and tables (``*_rows``). It imports neither
  ``claims.py`` nor ``steps.py``.
* ``claims.py`` - ``claims(results) -> list[Claim]``: the claim functions, the premises they check and the paper's
  numbers; pure, reads only a saved ``results.json`` (no model) through ``readers.py``, so ``rlhf-nb claims`` and
  ``rlhf-nb report`` recompute every verdict with the current code. A finding that needs a claim's test lives here.
* ``figures.py`` - ``FIGURES``: figures registered by name, drawn from ``results.json`` alone (through ``readers.py``).

Each package's ``__init__.py`` names its notebook (``NOTEBOOK = "NN_name"``): that is the registry
(:mod:`rlhf_nb.notebook.registry`). Adding a paper means one folder here, one notebook and one YAML file.
"""
