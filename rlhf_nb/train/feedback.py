"""Diverse feedback, after RLHF-Blender (Metz et al. 2023, arXiv 2308.04332): events, an append-only log, a
translator to training targets, and reward models per feedback type and as an ensemble.

Feedback types follow RLHF-Blender's taxonomy, brought to language models:

* evaluative - ``rating`` (a value on a scale, e.g. 0-10) and ``descriptive`` (features ticked as holding, e.g.
  "follows: all lowercase");
* comparative - ``comparison`` (A, B or tie) and ``ranking`` (an order over several responses);
* constructive - ``correction`` (an edited response, preferred to the original) and ``demonstration`` (an
  answer written for the prompt, preferred to every response shown);
* ``text`` - free text, kept as data and not learned from.

Every event is a record (schema version, id, time, annotator, prompt and response ids, the model and parameters
that produced the responses, the type and its content), appended as one JSON line to a log that is never
rewritten: undo appends a ``retract`` event. :func:`translate` turns the log into standardised targets
(retracted and duplicate events removed, the latest of duplicates kept), as RLHF-Blender's FeedbackTranslator
does. Learning is linear on frozen features: ratings and descriptive feedback by ridge regression on the
normalised value, comparative and constructive feedback by Bradley-Terry on feature differences; a reward
model per type, and an ensemble of per-type models (each standardised on the response pool, weighted by the
inverse of its bootstrap variance per response).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = 1
TYPES = ("rating", "comparison", "ranking", "correction", "demonstration", "descriptive", "text")
LEARNED = ("rating", "comparison", "ranking", "correction", "demonstration", "descriptive")
EVALUATIVE, COMPARATIVE, CONSTRUCTIVE = ("rating", "descriptive"), ("comparison", "ranking"), ("correction", "demonstration")


class FeedbackError(ValueError):
    """An event that cannot be recorded; the message names the field."""


@dataclass(frozen=True)
class Event:
    type: str
    prompt_id: str
    response_ids: tuple[str, ...]
    content: dict[str, Any]
    annotator: str = "anonymous"
    model: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    time: float = field(default_factory=time.time)
    schema: int = SCHEMA

    def to_json(self) -> str:
        out = asdict(self)
        out["response_ids"] = list(self.response_ids)
        return json.dumps(out, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        data = dict(data)
        if data.get("schema") != SCHEMA:
            raise FeedbackError(f"event schema {data.get('schema')!r} is not {SCHEMA}")
        data["response_ids"] = tuple(data.get("response_ids", ()))
        return cls(**data)


def validate(event: Event, scale: tuple[int, int] = (0, 10)) -> None:
    """Raise :class:`FeedbackError` naming what is wrong; return None for a recordable event."""
    c, ids = event.content, event.response_ids
    if event.type == "retract":
        if not isinstance(c.get("event"), str):
            raise FeedbackError("retract: 'event' must be the id of the event to take back")
        return
    if event.type not in TYPES:
        raise FeedbackError(f"unknown feedback type {event.type!r}; known: {', '.join(TYPES)}")
    if not event.prompt_id:
        raise FeedbackError(f"{event.type}: prompt_id is empty")
    if event.type == "rating":
        value = c.get("value")
        if len(ids) != 1:
            raise FeedbackError("rating: rate exactly one response")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not scale[0] <= value <= scale[1]:
            raise FeedbackError(f"rating: 'value' must be a number from {scale[0]} to {scale[1]}, got {value!r}")
    elif event.type == "comparison":
        if len(ids) != 2 or ids[0] == ids[1]:
            raise FeedbackError("comparison: compare exactly two different responses")
        if c.get("preferred") not in (*ids, "tie"):
            raise FeedbackError(f"comparison: 'preferred' must be one of {ids[0]!r}, {ids[1]!r} or 'tie', "
                                f"got {c.get('preferred')!r}")
    elif event.type == "ranking":
        order = c.get("order")
        if not isinstance(order, list) or sorted(order) != sorted(ids) or len(set(order)) != len(order) or len(order) < 2:
            raise FeedbackError(f"ranking: 'order' must list each of the {len(ids)} shown responses once, best first, "
                                f"got {order!r}")
    elif event.type == "correction":
        text = c.get("text")
        if len(ids) != 1:
            raise FeedbackError("correction: correct exactly one response")
        if not isinstance(text, str) or not text.strip():
            raise FeedbackError("correction: 'text' (the corrected response) is empty")
        if text == c.get("original"):
            raise FeedbackError("correction: the corrected text is identical to the original")
    elif event.type == "demonstration":
        if not isinstance(c.get("text"), str) or not c["text"].strip():
            raise FeedbackError("demonstration: 'text' (the demonstrated answer) is empty")
    elif event.type == "descriptive":
        features = c.get("features")
        if len(ids) != 1:
            raise FeedbackError("descriptive: describe exactly one response")
        if not isinstance(features, dict) or not features or not all(isinstance(v, bool) for v in features.values()):
            raise FeedbackError("descriptive: 'features' must map each feature name to true or false")
    elif event.type == "text":
        if not isinstance(c.get("text"), str) or not c["text"].strip():
            raise FeedbackError("text: the comment is empty")


class FeedbackLog:
    """Events as JSON lines in one file, appended (and flushed to disk) one at a time and never rewritten.

    A new ``FeedbackLog`` on the same path (after a kernel restart) sees every event written before."""

    def __init__(self, path: str | Path, scale: tuple[int, int] = (0, 10)):
        self.path = Path(path)
        self.scale = scale
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, event: Event) -> Event:
        validate(event, self.scale)  # raises before anything is written
        line = event.to_json() + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        return event

    def extend(self, events: Iterable[Event]) -> None:
        """Append many events (each validated first; none is written if one is invalid)."""
        events = list(events)
        for e in events:
            validate(e, self.scale)
        with open(self.path, "a", encoding="utf-8") as f:
            f.writelines(e.to_json() + "\n" for e in events)
            f.flush()
            os.fsync(f.fileno())

    def raw(self) -> list[Event]:
        """Every event in the file, retractions included, in the order written."""
        if not self.path.exists():
            return []
        with open(self.path, encoding="utf-8") as f:
            return [Event.from_dict(json.loads(line)) for line in f if line.strip()]

    def events(self) -> list[Event]:
        """The events in force: retracted events and the retractions themselves left out."""
        raw = self.raw()
        retracted = {e.content["event"] for e in raw if e.type == "retract"}
        return [e for e in raw if e.type != "retract" and e.id not in retracted]

    def undo(self, annotator: str | None = None) -> Event | None:
        """Retract the newest event in force (of ``annotator``, if given) by appending a ``retract`` event."""
        live = [e for e in self.events() if annotator is None or e.annotator == annotator]
        if not live:
            return None
        last = live[-1]
        self.append(Event("retract", last.prompt_id, last.response_ids, {"event": last.id},
                          annotator=last.annotator))
        return last

    def __len__(self) -> int:
        return len(self.events())


# ----------------------------------------------------------------------------------------------
# translation to targets
# ----------------------------------------------------------------------------------------------


@dataclass
class Targets:
    """Standardised training targets of one or more feedback types.

    ``values``: (response id, value in [0, 1]) for evaluative feedback; ``pairs``: (better id, worse id) for
    comparative and constructive feedback; ``texts``: responses written by annotators (corrections and
    demonstrations), id -> (prompt id, text), which need features before learning."""

    values: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    pairs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    texts: dict[str, tuple[str, str]] = field(default_factory=dict)
    comments: list[tuple[str, str]] = field(default_factory=list)  # (prompt id, free text)
    duplicates: int = 0

    def count(self, kind: str) -> int:
        return len(self.values.get(kind, [])) + len(self.pairs.get(kind, []))


def _key(e: Event) -> tuple[Any, ...]:
    return (e.annotator, e.type, e.prompt_id, e.response_ids)


def written_id(e: Event) -> str:
    """The id a correction or demonstration's text gets as a response."""
    return f"{e.type}:{e.id}"


def translate(events: Sequence[Event], scale: tuple[int, int] = (0, 10)) -> Targets:
    """Events in force -> :class:`Targets`. An annotator's later event on the same prompt, responses and type
    replaces the earlier one (a changed mind, or a double click)."""
    latest: dict[tuple[Any, ...], Event] = {}
    for e in events:
        latest[_key(e)] = e
    out = Targets(duplicates=len(events) - len(latest))
    lo, hi = scale
    for e in latest.values():
        c, ids = e.content, e.response_ids
        if e.type == "rating":
            out.values.setdefault("rating", []).append((ids[0], (float(c["value"]) - lo) / (hi - lo)))
        elif e.type == "descriptive":
            flags = list(c["features"].values())
            out.values.setdefault("descriptive", []).append((ids[0], sum(flags) / len(flags)))
        elif e.type == "comparison":
            if c["preferred"] != "tie":
                other = ids[1] if c["preferred"] == ids[0] else ids[0]
                out.pairs.setdefault("comparison", []).append((c["preferred"], other))
        elif e.type == "ranking":
            out.pairs.setdefault("ranking", []).extend(combinations(c["order"], 2))
        elif e.type == "correction":
            new = written_id(e)
            out.texts[new] = (e.prompt_id, c["text"])
            out.pairs.setdefault("correction", []).append((new, ids[0]))
        elif e.type == "demonstration":
            new = written_id(e)
            out.texts[new] = (e.prompt_id, c["text"])
            out.pairs.setdefault("demonstration", []).extend((new, r) for r in ids)
        elif e.type == "text":
            out.comments.append((e.prompt_id, c["text"]))
    return out


# ----------------------------------------------------------------------------------------------
# learning
# ----------------------------------------------------------------------------------------------


@dataclass
class LinearReward:
    """r(x) = w . x on standardised features."""

    w: np.ndarray
    kind: str

    def score(self, features: np.ndarray) -> np.ndarray:
        return features @ self.w


def fit_values(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> np.ndarray:
    """Ridge regression of centred ``y`` on ``x`` (closed form in the smaller of the two dimensions)."""
    y = y - y.mean()
    n, d = x.shape
    if n < d:
        return x.T @ np.linalg.solve(x @ x.T + l2 * np.eye(n), y)
    return np.linalg.solve(x.T @ x + l2 * np.eye(d), x.T @ y)


def fit_pairs(better: np.ndarray, worse: np.ndarray, l2: float = 1.0) -> np.ndarray:
    """Bradley-Terry on feature differences (L-BFGS, the solver of the linear BT heads)."""
    from rlhf_nb.train.reward import logistic

    d = better - worse
    return logistic(d, np.ones(len(d)), l2, bias=False)


def fit(kind: str, targets: Targets, features: Mapping[str, np.ndarray], l2: float = 1.0) -> LinearReward | None:
    """One type's reward model from its targets (None when it has none, or values that never vary)."""
    if kind in targets.values:
        rows = targets.values[kind]
        y = np.array([v for _, v in rows])
        if len(rows) < 2 or np.ptp(y) == 0:
            return None
        return LinearReward(fit_values(np.stack([features[i] for i, _ in rows]), y, l2), kind)
    if kind in targets.pairs and targets.pairs[kind]:
        rows = targets.pairs[kind]
        return LinearReward(fit_pairs(np.stack([features[b] for b, _ in rows]),
                                      np.stack([features[w] for _, w in rows]), l2), kind)
    return None


@dataclass
class Ensemble:
    """Per-type reward models, each standardised on a reference pool, averaged with inverse-variance weights
    (the variance of each type's standardised score over bootstrap refits, per response)."""

    members: dict[str, list[LinearReward]]  # kind -> bootstrap refits
    centre: dict[str, float]
    spread: dict[str, float]

    def score(self, features: np.ndarray) -> np.ndarray:
        num, den = np.zeros(len(features)), np.zeros(len(features))
        for kind, fits in self.members.items():
            z = (np.stack([m.score(features) for m in fits]) - self.centre[kind]) / self.spread[kind]
            precision = 1.0 / (z.var(0) + 1e-3)
            num += precision * z.mean(0)
            den += precision
        return num / np.maximum(den, 1e-12)


def _resample(targets: Targets, kind: str, rng: np.random.Generator) -> Targets:
    out = Targets()
    source = targets.values if kind in targets.values else targets.pairs
    rows = source[kind]
    picked = [rows[i] for i in rng.integers(0, len(rows), len(rows))]
    (out.values if kind in targets.values else out.pairs)[kind] = picked
    return out


def fit_ensemble(targets: Targets, features: Mapping[str, np.ndarray], pool: np.ndarray, l2: float = 1.0,
                 bootstraps: int = 5, seed: int = 0) -> Ensemble | None:
    """Per-type models on every type present in ``targets``, with ``bootstraps`` refits each."""
    rng = np.random.default_rng(seed)
    members, centre, spread = {}, {}, {}
    for kind in LEARNED:
        if fit(kind, targets, features, l2) is None:
            continue
        fits = [m for m in (fit(kind, _resample(targets, kind, rng), features, l2) for _ in range(bootstraps)) if m]
        if not fits:
            continue
        ref = np.stack([m.score(pool) for m in fits]).mean(0)
        members[kind], centre[kind], spread[kind] = fits, float(ref.mean()), float(ref.std() + 1e-9)
    return Ensemble(members, centre, spread) if members else None
