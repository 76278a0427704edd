"""Finsta-Synth captions: sampling a clip's script, rendering its caption and gold text scene graph.

The caption grammar and the gold TSG conventions are documented in the package docstring
(``modeling_finsta/synth/__init__.py``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..scene_graphs import ParsedTextSceneGraph
from .config import DIRECTIONS, RELATIONAL_KINDS, FinstaSynthConfig
from .samples import ClipEvent, ClipScript, SynthObject


# ----------------------------------------------------------------------------------------------
# Captions and text scene graphs
# ----------------------------------------------------------------------------------------------


class _CaptionBuilder:
    """Appends words to a caption while recording the gold TSG with exact character spans."""

    def __init__(self) -> None:
        self.text = ""
        self.graph = ParsedTextSceneGraph(caption="")
        self.entity_nodes: dict[int, tuple[int, int]] = {}  # entity -> (object node, attribute node)

    def add(self, words: str) -> tuple[int, int]:
        start = len(self.text)
        self.text += words
        return start, len(self.text)

    def noun_phrase(self, entity: int, obj: SynthObject) -> int:
        self.add("the ")
        colour_span = self.add(obj.colour)
        self.add(" ")
        shape_span = self.add(obj.shape)
        if entity not in self.entity_nodes:
            object_node = self.graph.add_node("object", obj.shape, obj.shape, [shape_span])
            attribute_node = self.graph.add_node("attribute", obj.colour, obj.colour, [colour_span])
            self.graph.add_edge(object_node, attribute_node, "attribute")
            self.entity_nodes[entity] = (object_node, attribute_node)
        else:
            object_node, attribute_node = self.entity_nodes[entity]
            self.graph.nodes[object_node].spans.append(shape_span)
            self.graph.nodes[attribute_node].spans.append(colour_span)
        return object_node

    def predicate(self, subject_node: int, text: str, lemma: str) -> int:
        node = self.graph.add_node("predicate", text, lemma, [self.add(text)])
        self.graph.add_edge(subject_node, node, "subject")
        return node

    def predicate_attribute(self, predicate_node: int, text: str, span: tuple[int, int]) -> None:
        node = self.graph.add_node("predicate_attribute", text, text, [span])
        self.graph.add_edge(predicate_node, node, "predicate_attribute")


_CLAUSE_VERBS = {
    "move": ("moves", "move"),
    "towards": ("moves", "move"),
    "away": ("moves", "move"),
    "pass": ("passes", "pass"),
    "appear": ("appears", "appear"),
    "disappear": ("disappears", "disappear"),
    "still": ("stays", "stay"),
}
_PREDICATE_ATTRIBUTE_WORDS = {"towards": "towards", "away": "away from", "still": "still"}


def _add_clause(builder: _CaptionBuilder, event: ClipEvent, objects: Sequence[SynthObject]) -> int:
    subject_node = builder.noun_phrase(event.subject, objects[event.subject])
    builder.add(" ")
    text, lemma = _CLAUSE_VERBS[event.kind]
    predicate_node = builder.predicate(subject_node, text, lemma)
    modifier = event.direction if event.kind == "move" else _PREDICATE_ATTRIBUTE_WORDS.get(event.kind)
    if modifier is not None:
        builder.add(" ")
        builder.predicate_attribute(predicate_node, modifier, builder.add(modifier))
    if event.landmark is not None:
        builder.add(" ")
        landmark_node = builder.noun_phrase(event.landmark, objects[event.landmark])
        builder.graph.add_edge(predicate_node, landmark_node, "object")
    return predicate_node


def render_caption(script: ClipScript, objects: Sequence[SynthObject]) -> tuple[str, ParsedTextSceneGraph]:
    """The caption of a clip script and its gold TSG (see the ``modeling_finsta.synth`` docstring for the grammar)."""
    shape = tuple(len(phase) for phase in script.phases)
    if shape == (1,):
        clauses = [(script.phases[0][0], None)]
    elif shape == (2,):
        clauses = [(script.phases[0][0], None), (script.phases[0][1], "while")]
    elif shape == (1, 1):
        clauses = [(script.phases[0][0], None), (script.phases[1][0], "then")]
    else:
        raise ValueError(
            f"a clip script is one event, two simultaneous events or two phases of one event, got {script}"
        )
    builder = _CaptionBuilder()
    for event, connective in clauses:
        if connective == "while":
            builder.add(" ")
            connective_span = builder.add("while")
            builder.add(" ")
        elif connective == "then":
            builder.add(", ")
            connective_span = builder.add("then")
            builder.add(" ")
        predicate_node = _add_clause(builder, event, objects)
        if connective is not None:
            builder.predicate_attribute(predicate_node, connective, connective_span)
    builder.graph.caption = builder.text
    return builder.text, builder.graph


# ----------------------------------------------------------------------------------------------
# Sampling scripts
# ----------------------------------------------------------------------------------------------


def _sample_event(rng: np.random.Generator, kinds: Sequence[str], num_objects: int) -> ClipEvent:
    kind = kinds[rng.integers(len(kinds))]
    subject = int(rng.integers(num_objects))
    if kind == "move":
        return ClipEvent("move", subject, direction=DIRECTIONS[rng.integers(len(DIRECTIONS))])
    if kind in RELATIONAL_KINDS:
        others = [k for k in range(num_objects) if k != subject]
        return ClipEvent(kind, subject, landmark=others[rng.integers(len(others))])
    return ClipEvent(kind, subject)


def sample_script(rng: np.random.Generator, config: FinstaSynthConfig) -> ClipScript:
    """A random script: one phase (with probability ``1 - two_phase_probability``, sometimes with a
    simultaneous ``while`` clause) or two phases whose events can follow each other."""
    num_objects = config.objects_per_clip
    kinds = [k for k in config.event_kinds if num_objects > 1 or k not in RELATIONAL_KINDS]
    if rng.random() >= config.two_phase_probability:
        main = _sample_event(rng, kinds, num_objects)
        phase = (main,)
        if num_objects > 1 and main.kind not in RELATIONAL_KINDS and rng.random() < config.concurrent_probability:
            others = [k for k in range(num_objects) if k != main.subject]
            other = others[rng.integers(len(others))]
            if rng.random() < 0.5:
                phase += (ClipEvent("still", other),)
            else:
                phase += (ClipEvent("move", other, direction=DIRECTIONS[rng.integers(len(DIRECTIONS))]),)
        return ClipScript((phase,))
    for _ in range(100):
        first, second = _sample_event(rng, kinds, num_objects), _sample_event(rng, kinds, num_objects)
        visibility = ("appear", "disappear")
        if first.kind == "disappear" and first.subject in second.entities():
            continue  # gone before the second phase
        if second.kind == "appear" and second.subject in first.entities():
            continue  # not there yet in the first phase
        if first.kind in visibility and second.kind in visibility and first.subject == second.subject:
            continue
        if second.kind == "pass" and second.subject in first.entities():
            continue  # a pass needs a free start position (the time-reversed clip still has this case)
        return ClipScript(((first,), (second,)))
    raise RuntimeError(f"could not sample a two-phase script from event kinds {kinds}")
