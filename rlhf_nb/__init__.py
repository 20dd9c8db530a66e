"""rlhf-nb: notebook-first, reproducible RLHF research (see README.md and ARCHITECTURE.md).

``rlhf_nb.start`` opens a notebook's run (:func:`rlhf_nb.notebook.experiment.start`); importing the package imports
nothing else of it (the notebook layer loads on first use), so a lower layer can be imported on its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rlhf_nb.core.quiet import filter_known_noise

if TYPE_CHECKING:  # pragma: no cover
    from rlhf_nb.notebook.experiment import Experiment, start

filter_known_noise()

__version__ = "0.1.0"
__all__ = ["Experiment", "start", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Experiment", "start"):
        from rlhf_nb.notebook import experiment

        return getattr(experiment, name)
    raise AttributeError(f"module 'rlhf_nb' has no attribute {name!r}")
