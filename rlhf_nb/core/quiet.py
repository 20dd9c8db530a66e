"""Targeted filters for messages known to be noise in this stack (each listed with its reason); anything else still
shows. :func:`quiet_third_party` also turns off the per-call progress bars of transformers' weight loading and of
datasets' map/filter passes, which print one bar per trainer call; the rlhf-nb bars stay."""

from __future__ import annotations

import logging
import re
import warnings

#: (logger or warning category, message pattern, why it is noise)
KNOWN_NOISE = [
    ("bitsandbytes.backends.cpu.ops", r"Failed to load CPU gemm_4bit_forward from kernels-community",
     "an optional faster CPU kernel from the hub; the built-in kernel is used"),
    (FutureWarning, r"`(is_)?gradient_checkpointing` is deprecated",
     "transformers 5 renames the argument that trl itself still sets"),
    ("transformers.modeling_utils", r"ForSequenceClassification LOAD REPORT",
     "a reward head (score.*) is newly initialised on purpose; other load reports still show"),
]


class _Drop(logging.Filter):
    def __init__(self, pattern: str, only_reward_head: bool = False):
        super().__init__()
        self.pattern, self.only_reward_head = re.compile(pattern), only_reward_head

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not self.pattern.search(message):
            return True
        if self.only_reward_head:  # drop only when every reported key is the new score head
            keys = re.findall(r"^(\S+)\s*\|\s*(MISSING|UNEXPECTED|MISMATCH)", message, re.MULTILINE)
            return not keys or not all(k.startswith("score.") for k, _ in keys)
        return False


_quiet = False


_filtered = False


def filter_known_noise() -> None:
    """Install the filters of :data:`KNOWN_NOISE` (idempotent, imports nothing). ``import rlhf_nb`` calls it, so
    messages logged while a third-party package is being imported are filtered too."""
    global _filtered
    if _filtered:
        return
    for source, pattern, _why in KNOWN_NOISE:
        if isinstance(source, str):
            logging.getLogger(source).addFilter(_Drop(pattern, only_reward_head="LOAD REPORT" in pattern))
        else:
            warnings.filterwarnings("ignore", message=pattern, category=source)
    _filtered = True


def quiet_third_party() -> None:
    """:func:`filter_known_noise`, and per-call loading bars off (idempotent)."""
    global _quiet
    if _quiet:
        return
    filter_known_noise()
    try:
        from transformers.utils import logging as tlogging

        tlogging.disable_progress_bar()
        load_report = next(pattern for _, pattern, _ in KNOWN_NOISE if "LOAD REPORT" in pattern)
        tlogging.get_logger("transformers.modeling_utils").addFilter(_Drop(load_report, only_reward_head=True))
    except ImportError:  # pragma: no cover
        pass
    try:
        import datasets

        datasets.disable_progress_bars()
    except ImportError:  # pragma: no cover
        pass
    _quiet = True
