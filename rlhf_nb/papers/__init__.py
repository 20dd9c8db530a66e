"""One folder per paper, each with the same four modules:

* ``params.py`` - ``Params``: the notebook's parameters (pydantic, nested sections built from the routines'
  configs, see :mod:`rlhf_nb.notebook.params`); ``params/NN_name.yaml`` holds only overrides of its defaults.
* ``steps.py`` - the experiment's steps: functions that take parameters and data and return typed results,
  never mutating their inputs.
* ``claims.py`` - ``claims(results) -> list[Claim]``: pure, reads only a saved ``results.json`` (no model), so
  ``rlhf-nb claims`` and ``rlhf-nb report`` recompute every verdict with the current code.
* ``figures.py`` - ``FIGURES``: figures registered by name, drawn from ``results.json`` alone.

Each package's ``__init__.py`` names its notebook (``NOTEBOOK = "NN_name"``): that is the registry
(:mod:`rlhf_nb.notebook.registry`). Adding a paper means one folder here, one notebook and one YAML file.
"""
