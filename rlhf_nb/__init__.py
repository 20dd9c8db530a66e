"""rlhf-nb: notebook-first, reproducible RLHF research (see README.md)."""

from .display import filter_known_noise
from .experiment import Experiment, start

filter_known_noise()

__version__ = "0.1.0"
__all__ = ["Experiment", "start", "__version__"]
