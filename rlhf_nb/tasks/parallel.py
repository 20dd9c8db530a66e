"""English-French sentence pairs for the translation part of the forgetting check, offline.

Source ``"gnome-user-docs"``: the GNOME desktop help (Debian package ``gnome-user-docs``, CC-BY-SA-3.0, so it is
read at run time and never committed). Its pages are Mallard XML in English (``help/C/<doc>/*.page``) and in
French (``help/fr/<doc>/*.page``) with the same structure: the translators translate paragraph by paragraph. A
page whose English and French versions have the same number of paragraphs (``<p>``, ``<title>``, ``<desc>``
outside the credits) is aligned paragraph by paragraph; a pair is kept when the English side is one sentence of
``min_words``-``max_words`` words, the French side is not a copy of it, and their lengths are in proportion.

Where the help lives: ``$RLHF_NB_GNOME_HELP``, then ``/usr/share/help`` (the package installed), then the
project's cache (``~/.cache/rlhf_nb/gnome-user-docs``), where :func:`gnome_help_root` unpacks the package with
``apt-get download`` + ``dpkg-deb -x`` on first use (no installation, no root needed).

Other sources: a local ``.jsonl`` with ``en``/``fr`` fields, or ``"hub"`` (WMT14 fr-en test, needs network).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from rlhf_nb.core.errors import DataError
from rlhf_nb.tasks.data import read_records, resolve_path

GNOME = "gnome-user-docs"
SOURCES = (GNOME, "hub")
_MALLARD = "{http://projectmallard.org/1.0/}"
_TEXT_TAGS = {f"{_MALLARD}{t}" for t in ("p", "title", "desc")}
_SENTENCE_END = re.compile(r"[.!?…](?:\s|$)")


def _cache_root() -> Path:
    return Path(os.environ.get("RLHF_NB_CACHE", Path.home() / ".cache" / "rlhf_nb")).expanduser() / GNOME


def _has_help(root: Path) -> bool:
    return (root / "C" / "gnome-help").is_dir() and (root / "fr" / "gnome-help").is_dir()


def gnome_help_root(fetch: bool = True) -> Path:
    """The folder holding ``C/`` and ``fr/`` help pages; unpacks the Debian package into the cache if needed."""
    for candidate in filter(None, [os.environ.get("RLHF_NB_GNOME_HELP"), "/usr/share/help",
                                   str(_cache_root() / "usr" / "share" / "help")]):
        if _has_help(Path(candidate)):
            return Path(candidate)
    if not fetch:
        raise DataError(f"{GNOME}: the GNOME help pages are not on this machine (looked in $RLHF_NB_GNOME_HELP, "
                        f"/usr/share/help and {_cache_root()}); `apt-get install {GNOME}` or let rlhf-nb unpack it")
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise DataError(f"{GNOME}: needs Debian's apt-get and dpkg-deb to fetch the package; on another system set "
                        "RLHF_NB_GNOME_HELP to a folder with C/gnome-help and fr/gnome-help, or pass a jsonl file "
                        "of en/fr pairs")
    target = _cache_root()
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(["apt-get", "download", GNOME], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob(f"{GNOME}_*.deb"))
        if done.returncode or not debs:
            raise DataError(f"{GNOME}: `apt-get download {GNOME}` failed ({(done.stderr or done.stdout).strip()[-300:]}); "
                            "install the package or pass a jsonl file of en/fr pairs")
        staging = Path(tempfile.mkdtemp(dir=target.parent if target.parent.exists() else None))
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(staging)], check=True)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(target)
    root = target / "usr" / "share" / "help"
    if not _has_help(root):
        raise DataError(f"{GNOME}: the unpacked package at {target} has no C/ and fr/ gnome-help pages")
    return root


def _paragraphs(path: Path) -> list[str]:
    """Text of the page's paragraphs, titles and descriptions in document order (credits left out)."""
    try:
        tree = ET.parse(path)
    except ET.ParseError:
        return []
    out = []
    for info in tree.getroot().iter(f"{_MALLARD}info"):  # credits, revisions, links: not prose
        for child in list(info):
            if child.tag != f"{_MALLARD}desc":
                info.remove(child)
    for element in tree.getroot().iter():
        if element.tag in _TEXT_TAGS:
            out.append(" ".join("".join(element.itertext()).split()))
    return out


def _one_sentence(text: str, min_words: int, max_words: int) -> bool:
    words = text.split()
    if not min_words <= len(words) <= max_words or not text[:1].isupper():
        return False
    return len(_SENTENCE_END.findall(text)) == 1 and text.rstrip()[-1:] in ".!?"


def gnome_pairs(root: Path | None = None, docs: tuple[str, ...] = ("gnome-help",), min_words: int = 6,
                max_words: int = 40) -> list[tuple[str, str]]:
    """Aligned single-sentence (English, French) pairs from the help pages, deduplicated, in a fixed order."""
    root = root or gnome_help_root()
    pairs: dict[str, str] = {}
    for doc in docs:
        for en_page in sorted((root / "C" / doc).glob("*.page")):
            fr_page = root / "fr" / doc / en_page.name
            if not fr_page.is_file():
                continue
            en, fr = _paragraphs(en_page), _paragraphs(fr_page)
            if len(en) != len(fr):  # the translation's structure differs: no safe alignment
                continue
            for e, f in zip(en, fr):
                if (_one_sentence(e, min_words, max_words) and f and f != e and e not in pairs
                        and 0.6 <= len(f) / len(e) <= 2.0):
                    pairs[e] = f
    return sorted(pairs.items())


def load_en_fr(source: str, limit: int, seed: int = 0) -> list[tuple[str, str]]:
    """``limit`` (English, French) pairs from ``source`` (see the module docstring), a seeded sample."""
    if source == "hub":
        from datasets import load_dataset

        try:
            rows = load_dataset("wmt/wmt14", "fr-en", split="test")
        except Exception as err:  # noqa: BLE001
            raise DataError(f"could not load wmt/wmt14 fr-en from the hub ({err}); pass a local jsonl or "
                            f"'{GNOME}' instead") from err
        pairs = [(r["translation"]["en"], r["translation"]["fr"]) for r in rows]
    elif source == GNOME:
        pairs = gnome_pairs()
    else:
        pairs = [(r["en"], r["fr"]) for r in read_records(resolve_path(source, "translation pairs"))]
    if len(pairs) < limit:
        raise DataError(f"translation pairs: {source!r} has {len(pairs)} pairs, fewer than the {limit} asked for")
    return random.Random(seed).sample(pairs, limit)
