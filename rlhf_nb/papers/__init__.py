"""One folder per paper, each with the same five modules (the quickstart, which makes no claims, has no claims):

* ``params.py`` - ``Params``: the notebook's parameters (pydantic, nested sections built from the routines'
  configs, see :mod:`rlhf_nb.notebook.params`); ``params/NN_name.yaml`` holds only overrides of its defaults.
* ``steps.py`` - the experiment's steps: functions that take parameters and data and return typed results,
  never mutating their inputs.
* ``readers.py`` - pure functions over a saved ``results.json``: accessors (the matrix of outcomes, the snapshots,
  the arms, ...), the notebook's findings (``finding_*``: sentences) and tables (``*_rows``), and ``findings(results)``
  / ``tables(results)`` listing them in the notebook's order (``rlhf-nb report`` recomputes them; every smoke run in
  the tests checks they equal what the notebook showed). It imports neither ``claims.py`` nor ``steps.py``, so a
  finding lives here even where it needs a claim's test (its premises too, e.g. 03's ``open_gold_premises``).
* ``claims.py`` - ``claims(results) -> list[Claim]``: the claim functions, the premises they check and the paper's
  numbers; pure, reads only a saved ``results.json`` (no model) through ``readers.py``, so ``rlhf-nb claims`` and
  ``rlhf-nb report`` recompute every verdict with the current code.
* ``figures.py`` - ``FIGURES``: figures registered by name, drawn from ``results.json`` alone (through ``readers.py``).

Each package's ``__init__.py`` names its notebook (``NOTEBOOK = "NN_name"``): that is the registry
(:mod:`rlhf_nb.notebook.registry`). Adding a paper means one folder here, one notebook and one YAML file.
"""
