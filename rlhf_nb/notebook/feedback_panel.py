"""An ipywidgets panel that collects the feedback types of :mod:`rlhf_nb.train.feedback` in JupyterLab.

``FeedbackPanel(items, log)`` shows one prompt and its responses (A, B, C, ...) at a time, with one tab per
feedback type (which tabs appear is configurable, like RLHF-Blender's ``feedbackComponents``). Every submit
appends one event to the log; a bad entry (a ranking that skips a response, an empty correction) shows a red
message naming the problem and writes nothing. Undo appends a retraction. Keyboard shortcuts, with the mouse over
the prompt and responses (ipyevents): ``a`` / ``b`` / ``t`` (A better, B better, tie), a digit (rate the selected
response), ``u`` (undo), ``n`` / ``p`` or the arrow keys (next / previous prompt); the same keys typed into the *keys*
box and Enter work anywhere (and ``10``). After each event, ``on_event`` (optional) may return a
line of HTML shown under the panel, e.g. the held-out accuracy of a reward model learned from the log so far.
"""

from __future__ import annotations

import html
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rlhf_nb.train.feedback import TYPES, Event, FeedbackError, FeedbackLog


@dataclass
class Item:
    """One prompt to give feedback on: its responses as (id, text), and descriptive features to tick."""

    prompt_id: str
    prompt: str
    responses: list[tuple[str, str]]
    features: list[str] = field(default_factory=list)


def _letters(n: int) -> list[str]:
    return list(string.ascii_uppercase[:n])


class FeedbackPanel:
    """The panel; display it with ``display(panel)`` or as a cell's last expression."""

    def __init__(self, items: Sequence[Item], log: FeedbackLog, types: Sequence[str] = TYPES, annotator: str = "you",
                 model: str = "", params: dict[str, Any] | None = None,
                 on_event: Callable[[], str] | None = None):
        import ipywidgets as w

        unknown = [t for t in types if t not in TYPES]
        if unknown:
            raise ValueError(f"unknown feedback type(s) {unknown}; known: {', '.join(TYPES)}")
        if not items:
            raise ValueError("FeedbackPanel needs at least one item")
        self.items, self.log, self.types = list(items), log, tuple(types)
        self.annotator, self.model, self.params, self.on_event = annotator, model, dict(params or {}), on_event
        self.index = 0
        lo, hi = log.scale

        self.prompt = w.HTML()
        self.responses = w.HTML()
        self.message = w.HTML()
        self.status = w.HTML()
        self.progress = w.HTML()
        self.target = w.Dropdown(description="response")
        self.compare = {k: w.Button(description=d, layout=w.Layout(width="110px"))
                        for k, d in (("a", "A is better"), ("b", "B is better"), ("t", "tie"))}
        for key, button in self.compare.items():
            button.on_click(lambda _, key=key: self.submit_comparison(key))
        self.rating = w.IntSlider(value=(lo + hi) // 2, min=lo, max=hi, description="rating")
        self.rate = w.Button(description="rate")
        self.rate.on_click(lambda _: self.submit_rating(self.rating.value))
        self.order = w.Text(description="order", placeholder="e.g. B, A, C (best first)")
        self.rank = w.Button(description="rank")
        self.rank.on_click(lambda _: self.submit_ranking(self.order.value))
        self.correction = w.Textarea(description="corrected", layout=w.Layout(width="95%", height="120px"))
        self.correct = w.Button(description="submit correction")
        self.correct.on_click(lambda _: self.submit_correction(self.correction.value))
        self.demonstration = w.Textarea(description="your answer", layout=w.Layout(width="95%", height="120px"))
        self.demonstrate = w.Button(description="submit demonstration")
        self.demonstrate.on_click(lambda _: self.submit_demonstration(self.demonstration.value))
        self.flags = w.VBox()
        self.describe = w.Button(description="submit description")
        self.describe.on_click(lambda _: self.submit_descriptive({c.description: c.value for c in self.flags.children}))
        self.comment = w.Textarea(description="comment", layout=w.Layout(width="95%", height="80px"))
        self.send = w.Button(description="submit comment")
        self.send.on_click(lambda _: self.submit_text(self.comment.value))
        self.keys = w.Text(description="keys", placeholder="a/b/t, 0-10, u, n, p + Enter", continuous_update=False)
        self.keys.observe(lambda change: self._key(change["new"]), names="value")
        nav = {name: w.Button(description=name) for name in ("previous", "next", "undo")}
        nav["previous"].on_click(lambda _: self.go(-1))
        nav["next"].on_click(lambda _: self.go(+1))
        nav["undo"].on_click(lambda _: self.undo())
        self.target.observe(lambda change: self._fill_correction(), names="value")

        pages = {
            "comparison": w.HBox(list(self.compare.values())),
            "rating": w.HBox([self.rating, self.rate]),
            "ranking": w.HBox([self.order, self.rank]),
            "correction": w.VBox([self.correction, self.correct]),
            "demonstration": w.VBox([self.demonstration, self.demonstrate]),
            "descriptive": w.VBox([self.flags, self.describe]),
            "text": w.VBox([self.comment, self.send]),
        }
        self.tabs = w.Tab(children=[pages[t] for t in self.types])
        for i, t in enumerate(self.types):
            self.tabs.set_title(i, t)
        self.tabs.selected_index = 0
        reading = w.VBox([self.prompt, self.responses])
        self.hotkeys = _hotkeys(reading, self._on_key)
        self.widget = w.VBox([self.progress, reading, self.target, self.tabs,
                              w.HBox([*nav.values(), self.keys]), self.message, self.status],
                             layout=w.Layout(border="1px solid #ccc", padding="8px"))
        self._show()

    # ------------------------------------------------------------------ display

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    @property
    def item(self) -> Item:
        return self.items[self.index]

    def _ids(self) -> dict[str, str]:
        return dict(zip(_letters(len(self.item.responses)), (rid for rid, _ in self.item.responses)))

    def _show(self) -> None:
        import ipywidgets as w

        item = self.item
        self.prompt.value = f"<b>Prompt {self.index + 1}/{len(self.items)}</b><pre style='white-space:pre-wrap'>" \
                            f"{html.escape(item.prompt)}</pre>"
        self.responses.value = "".join(
            f"<div style='border-left:3px solid #888;padding-left:6px;margin:4px 0'><b>{letter}</b>"
            f"<pre style='white-space:pre-wrap;margin:0'>{html.escape(text)}</pre></div>"
            for letter, (_, text) in zip(_letters(len(item.responses)), item.responses))
        self.target.options = _letters(len(item.responses))
        self.target.value = "A"
        self.flags.children = [w.Checkbox(description=f, value=False, indent=False) for f in item.features]
        self.order.value, self.demonstration.value, self.comment.value = "", "", ""
        self._fill_correction()
        self._progress()

    def _fill_correction(self) -> None:
        if self.target.value:
            self.correction.value = dict(self.item.responses)[self._ids()[self.target.value]]

    def _progress(self) -> None:
        events = self.log.events()
        done = {e.prompt_id for e in events}
        self.progress.value = (f"{sum(i.prompt_id in done for i in self.items)} of {len(self.items)} prompts have "
                               f"feedback · {len(events)} events in <code>{html.escape(str(self.log.path))}</code>")

    def go(self, step: int) -> None:
        self.index = (self.index + step) % len(self.items)
        self.message.value = ""
        self._show()

    # ------------------------------------------------------------------ events

    def _record(self, type_: str, response_ids: Sequence[str], content: dict[str, Any]) -> Event | None:
        event = Event(type_, self.item.prompt_id, tuple(response_ids), content, annotator=self.annotator,
                      model=self.model, params=self.params)
        try:
            self.log.append(event)
        except FeedbackError as err:
            self.message.value = f"<span style='color:#b00020'>Not recorded: {html.escape(str(err))}</span>"
            return None
        self.message.value = f"<span style='color:#1b5e20'>Recorded {type_}.</span>"
        self._progress()
        if self.on_event is not None:
            self.status.value = self.on_event()
        return event

    def _selected(self) -> str:
        return self._ids()[self.target.value]

    def submit_comparison(self, choice: str) -> Event | None:
        ids = self._ids()
        if len(ids) < 2:
            self.message.value = "<span style='color:#b00020'>Not recorded: a comparison needs two responses</span>"
            return None
        pair = (ids["A"], ids["B"])
        preferred = {"a": pair[0], "b": pair[1], "t": "tie"}.get(choice, choice)
        return self._record("comparison", pair, {"preferred": preferred})

    def submit_rating(self, value: Any) -> Event | None:
        return self._record("rating", [self._selected()], {"value": value})

    def submit_ranking(self, order: str) -> Event | None:
        ids = self._ids()
        letters = [x.strip().upper() for x in order.replace(">", ",").split(",") if x.strip()]
        unknown = [x for x in letters if x not in ids]
        if unknown:
            self.message.value = (f"<span style='color:#b00020'>Not recorded: ranking: unknown response(s) "
                                  f"{html.escape(', '.join(unknown))}; use the letters {', '.join(ids)}</span>")
            return None
        return self._record("ranking", list(ids.values()), {"order": [ids[x] for x in letters]})

    def submit_correction(self, text: str) -> Event | None:
        rid = self._selected()
        return self._record("correction", [rid], {"text": text, "original": dict(self.item.responses)[rid]})

    def submit_demonstration(self, text: str) -> Event | None:
        return self._record("demonstration", list(self._ids().values()), {"text": text})

    def submit_descriptive(self, features: dict[str, bool]) -> Event | None:
        return self._record("descriptive", [self._selected()], {"features": dict(features)})

    def submit_text(self, text: str) -> Event | None:
        return self._record("text", list(self._ids().values()), {"text": text})

    def undo(self) -> Event | None:
        taken = self.log.undo(self.annotator)
        self.message.value = (f"Took back the last {taken.type}." if taken else "Nothing to undo.")
        self._progress()
        if taken is not None and self.on_event is not None:
            self.status.value = self.on_event()
        return taken

    def _on_key(self, event: dict[str, Any]) -> None:
        """A keydown over the prompt and responses (modified keys, e.g. Ctrl+C, are left alone)."""
        if event.get("ctrlKey") or event.get("altKey") or event.get("metaKey"):
            return
        key = {"ArrowRight": "n", "ArrowLeft": "p"}.get(event.get("key", ""), event.get("key", ""))
        if len(key) == 1:
            self._key(key)

    def _key(self, key: str) -> None:
        key = key.strip().lower()
        if not key:
            return
        self.keys.value = ""
        if key in ("a", "b", "t"):
            self.submit_comparison(key)
        elif key.isdigit():
            self.submit_rating(int(key))
        elif key == "u":
            self.undo()
        elif key in ("n", "p"):
            self.go(+1 if key == "n" else -1)
        else:
            self.message.value = f"<span style='color:#b00020'>Unknown key {html.escape(key)!r}</span>"


def _hotkeys(source: Any, handler: Callable[[dict[str, Any]], None]) -> Any | None:
    """Keydown events of ``source`` (while the mouse is over it) sent to ``handler``; JupyterLab's own shortcuts
    (``a`` / ``b`` insert cells in command mode) do not fire meanwhile. None where ipyevents is not installed."""
    try:
        from ipyevents import Event
    except ImportError:  # the keys box still works
        return None
    events = Event(source=source, watched_events=["keydown"], ignore_modifier_key_events=True)
    events.on_dom_event(handler)
    return events
