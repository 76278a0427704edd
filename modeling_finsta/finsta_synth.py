"""Finsta-Synth: a procedural video-text dataset with gold text and video scene graphs.

Tiny clips (default 8 frames of 32x32 RGB) of coloured shapes that move, appear or disappear, each
with a caption from a small grammar, the caption's gold text scene graph (TSG) with exact
character spans, and the clip's gold dynamic scene graph (DSG) with pixel-exact boxes. It exists so
that Finsta and plain CLIP4Clip baselines (meanP, seqTransf) can be trained from pixels on a CPU in
minutes, and compared on hard-negative suites that isolate what scene-graph alignment should add:

* ``temporal``: the negative is the caption of the *time-reversed* clip. Reversal keeps the set of
  frames, so any order-blind video model (e.g. a mean of per-frame embeddings) scores both captions
  against the same embedding: it sits at 50% by construction.
* ``binding``: the colours of two mentioned objects are swapped.
* ``role``: subject and object of a relational event are swapped.
* ``static``: one object's colour or shape is replaced by one that is absent from the clip (a
  control that any model, even a static one, should pass).

Caption grammar (``NP`` = ``"the <colour> <shape>"``; every mention is a full noun phrase)::

    clause  := NP "moves" ("left" | "right" | "up" | "down")
             | NP "moves towards" NP | NP "moves away from" NP | NP "passes" NP
             | NP "appears" | NP "disappears" | NP "stays still"
    caption := clause                     # one phase over the whole clip
             | clause " while " clause    # two simultaneous events (the first is never relational)
             | clause ", then " clause    # two phases: first half, then second half of the clip

Gold TSG conventions (kept identical for true and negative captions):

* one ``object`` node per *entity* (lemma = shape), holding the spans of all its mentions, and one
  ``attribute`` node for its colour (edge object -> attribute);
* motion verbs are predicate ``move`` (text "moves"); the direction is a ``predicate_attribute``
  node: "left", "right", "up", "down", "towards" or "away from" (the last two also get a
  predicate -> object edge to the landmark). Other predicates: ``pass`` (with an object),
  ``appear``, ``disappear``, ``stay`` (with the predicate attribute "still");
* the connective of the second clause is a predicate attribute of its predicate: "then" marks
  event order, "while" simultaneity.

Gold DSG: every frame is a keyframe; each visible object has track id ``index + 1``, label = shape,
attributes = ``[colour]`` and the tight normalised box of its drawn pixels (objects never touch, so a
box holds only its own object's pixels). Relations per frame and ordered pair of visible objects:
one of "left of"/"right of"/"above"/"below" by the dominant axis of the centre offset, "near" when
the centres are closer than two object sizes, and "moving towards"/"moving away from" when the
subject moved since the previous frame (judged against the object's previous centre).

Every clip's event distribution is symmetric under time reversal (each generated clip is reversed
with probability 1/2), colours and roles are drawn uniformly, so text-only priors cannot solve the
suites.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from .scene_graphs import ParsedTextSceneGraph, ParsedVideoSceneGraph, VideoKeyframe, VideoObject, VideoRelation
from .video_scene_graph_io import write_video_scene_graph

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (230, 50, 50),
    "green": (50, 200, 70),
    "blue": (60, 100, 240),
    "yellow": (240, 220, 50),
    "purple": (160, 70, 220),
    "orange": (250, 140, 30),
    "cyan": (40, 210, 220),
    "white": (240, 240, 240),
}
"""RGB of every colour name a config may use."""

SHAPES = ("circle", "square", "triangle", "diamond")
"""Shape names a config may use."""

EVENT_KINDS = ("move", "towards", "away", "pass", "appear", "disappear", "still")
"""Event kinds. ``towards``/``away``/``pass`` are relational (they have a landmark object)."""

RELATIONAL_KINDS = ("towards", "away", "pass")
DIRECTIONS = ("left", "right", "up", "down")
_DIRECTION_VECTORS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
_REVERSED_DIRECTION = {"left": "right", "right": "left", "up": "down", "down": "up"}
_REVERSED_KIND = {"towards": "away", "away": "towards", "appear": "disappear", "disappear": "appear"}

HARD_NEGATIVE_SUITES = ("temporal", "binding", "role", "static")

# Relations of the gold DSG, per frame and ordered pair of visible objects.
SPATIAL_RELATIONS = ("left of", "right of", "above", "below")
NEAR_RELATION = "near"
MOTION_RELATIONS = ("moving towards", "moving away from")


@dataclass
class FinstaSynthConfig:
    """Everything that determines a Finsta-Synth dataset; equal configs give identical datasets.

    Args:
        seed: master seed. Each clip draws from its own generator seeded by ``(seed, split, index)``,
            so the test split does not change when ``num_train`` does.
        num_train, num_test: clips per split.
        num_frames: frames per clip (>= 4).
        image_size: frame height and width in pixels.
        object_size: side of an object's square stamp in pixels; default ``image_size // 4``.
        shapes, colours: vocabularies (names from ``SHAPES`` and ``PALETTE``).
        objects_per_clip: 1 to 3 objects, each a distinct (shape, colour) pair.
        event_kinds: event kinds the main events are drawn from (``"still"`` only ever appears as
            the second clause of a ``while`` caption).
        two_phase_probability: probability of a ``"..., then ..."`` caption.
        concurrent_probability: probability of a ``"... while ..."`` clause in a one-phase caption.
        background: RGB of the plain background.
        fps: frame rate written to exported videos (1.0 makes "1 frame per second" readers, as in
            CLIP4Clip, see every rendered frame).
        max_attempts: rejection-sampling attempts per clip before giving up with an error.
    """

    seed: int = 0
    num_train: int = 1000
    num_test: int = 200
    num_frames: int = 8
    image_size: int = 32
    object_size: Optional[int] = None
    shapes: tuple[str, ...] = ("circle", "square", "triangle")
    colours: tuple[str, ...] = ("red", "green", "blue", "yellow")
    objects_per_clip: int = 2
    event_kinds: tuple[str, ...] = ("move", "towards", "away", "pass", "appear", "disappear")
    two_phase_probability: float = 0.5
    concurrent_probability: float = 0.5
    background: tuple[int, int, int] = (40, 40, 40)
    fps: float = 1.0
    max_attempts: int = 2000

    def __post_init__(self) -> None:
        self.shapes = tuple(self.shapes)
        self.colours = tuple(self.colours)
        self.event_kinds = tuple(self.event_kinds)
        self.background = tuple(int(c) for c in self.background)
        if self.object_size is None:
            self.object_size = self.image_size // 4
        unknown_shapes = [s for s in self.shapes if s not in SHAPES]
        if unknown_shapes or not self.shapes:
            raise ValueError(f"FinstaSynthConfig.shapes must be non-empty names from {SHAPES}, got {self.shapes}")
        unknown_colours = [c for c in self.colours if c not in PALETTE]
        if unknown_colours or not self.colours:
            raise ValueError(
                f"FinstaSynthConfig.colours must be non-empty names from {sorted(PALETTE)}, got {self.colours}"
            )
        if len(set(self.shapes)) != len(self.shapes) or len(set(self.colours)) != len(self.colours):
            raise ValueError("FinstaSynthConfig.shapes and .colours must not repeat names")
        if not 1 <= self.objects_per_clip <= 3:
            raise ValueError(f"FinstaSynthConfig.objects_per_clip must be 1, 2 or 3, got {self.objects_per_clip}")
        if len(self.shapes) * len(self.colours) < self.objects_per_clip:
            raise ValueError("FinstaSynthConfig: fewer (shape, colour) pairs than objects_per_clip")
        if self.num_frames < 4:
            raise ValueError(f"FinstaSynthConfig.num_frames must be >= 4, got {self.num_frames}")
        if self.object_size < 4 or self.image_size < 3 * self.object_size:
            raise ValueError(
                f"FinstaSynthConfig needs object_size >= 4 and image_size >= 3 * object_size, "
                f"got image_size={self.image_size}, object_size={self.object_size}"
            )
        bad_kinds = [k for k in self.event_kinds if k not in EVENT_KINDS or k == "still"]
        if bad_kinds or not self.event_kinds:
            raise ValueError(
                f"FinstaSynthConfig.event_kinds must be non-empty names from {EVENT_KINDS[:-1]}, "
                f"got {self.event_kinds}"
            )
        if self.objects_per_clip == 1 and not set(self.event_kinds) - set(RELATIONAL_KINDS):
            raise ValueError("FinstaSynthConfig: one object per clip needs a non-relational event kind")
        if self.num_train < 0 or self.num_test < 0:
            raise ValueError("FinstaSynthConfig.num_train and .num_test must be >= 0")
        if not self.fps > 0:
            raise ValueError(f"FinstaSynthConfig.fps must be > 0, got {self.fps}")


@dataclass(frozen=True)
class SynthObject:
    """One object of a clip; its track id in the video graph is its index + 1."""

    shape: str
    colour: str

    @property
    def phrase(self) -> str:
        return f"the {self.colour} {self.shape}"


@dataclass(frozen=True)
class ClipEvent:
    """One clause: ``subject`` (object index) does ``kind`` (see ``EVENT_KINDS``).

    ``direction`` is set for ``move``; ``landmark`` (object index) for relational kinds.
    """

    kind: str
    subject: int
    direction: Optional[str] = None
    landmark: Optional[int] = None

    def reversed(self) -> "ClipEvent":
        """The event seen in the time-reversed clip."""
        direction = _REVERSED_DIRECTION[self.direction] if self.direction else None
        return replace(self, kind=_REVERSED_KIND.get(self.kind, self.kind), direction=direction)

    def entities(self) -> tuple[int, ...]:
        return (self.subject,) if self.landmark is None else (self.subject, self.landmark)


@dataclass(frozen=True)
class ClipScript:
    """What happens in a clip: one or two phases; a phase has one event or two simultaneous ones."""

    phases: tuple[tuple[ClipEvent, ...], ...]

    def reversed(self) -> "ClipScript":
        """Phases in reverse order, each event reversed; clause order within a phase is kept."""
        return ClipScript(tuple(tuple(event.reversed() for event in phase) for phase in reversed(self.phases)))

    def events(self) -> list[ClipEvent]:
        return [event for phase in self.phases for event in phase]


@dataclass
class FinstaSynthSample:
    """One clip with its caption and gold graphs.

    ``positions[t, k]`` is the (x, y) pixel of the top-left corner of object k's stamp in frame t and
    ``visible[t, k]`` whether it is drawn; the graphs and frames are rendered from them.
    """

    video_id: str
    split: str
    frames: np.ndarray  # uint8 [T, H, W, 3]
    caption: str
    text_graph: ParsedTextSceneGraph
    video_graph: ParsedVideoSceneGraph
    objects: list[SynthObject]
    script: ClipScript
    positions: np.ndarray  # int [T, K, 2]
    visible: np.ndarray  # bool [T, K]


@dataclass
class HardNegative:
    """A (video, true caption, negative caption) triple of a hard-negative suite."""

    suite: str
    video_index: int  # index into ``FinstaSynthDataset.test``
    video_id: str
    caption: str
    negative: str
    caption_graph: ParsedTextSceneGraph
    negative_graph: ParsedTextSceneGraph
    change: str  # human-readable description of what differs


@dataclass
class FinstaSynthDataset:
    config: FinstaSynthConfig
    train: list[FinstaSynthSample]
    test: list[FinstaSynthSample]
    hard_negatives: dict[str, list[HardNegative]] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------------


def shape_stamp(shape: str, size: int) -> np.ndarray:
    """Boolean ``[size, size]`` mask of a shape, sampled at pixel centres (no anti-aliasing)."""
    centres = np.arange(size) + 0.5
    x, y = np.meshgrid(centres, centres)
    half = size / 2
    if shape == "circle":
        mask = (x - half) ** 2 + (y - half) ** 2 <= half**2
    elif shape == "square":
        mask = np.ones((size, size), dtype=bool)
    elif shape == "triangle":
        # Apex at the top centre, base along the bottom row; row r spans (r + 1) / 2 on each side.
        mask = np.abs(x - half) <= (y + 0.5) * half / size
    elif shape == "diamond":
        mask = np.abs(x - half) + np.abs(y - half) <= half
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    return mask


def _stamp_extent(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight ``(x1, y1, x2, y2)`` of a stamp's pixels, end exclusive."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


class _Renderer:
    """Draws clips and their gold video graphs from integer positions and visibility."""

    def __init__(self, config: FinstaSynthConfig):
        self.config = config
        self.size = config.object_size
        self.stamps = {shape: shape_stamp(shape, self.size) for shape in config.shapes}
        self.extents = {shape: _stamp_extent(stamp) for shape, stamp in self.stamps.items()}

    def frames(self, objects: Sequence[SynthObject], positions: np.ndarray, visible: np.ndarray) -> np.ndarray:
        num_frames = positions.shape[0]
        side, size = self.config.image_size, self.size
        frames = np.empty((num_frames, side, side, 3), dtype=np.uint8)
        frames[:] = np.asarray(self.config.background, dtype=np.uint8)
        for k, obj in enumerate(objects):
            stamp, colour = self.stamps[obj.shape], np.asarray(PALETTE[obj.colour], dtype=np.uint8)
            for t in np.flatnonzero(visible[:, k]):
                x, y = positions[t, k]
                frames[t, y : y + size, x : x + size][stamp] = colour
        return frames

    def pixel_box(self, shape: str, position: Sequence[int]) -> tuple[int, int, int, int]:
        x1, y1, x2, y2 = self.extents[shape]
        return (int(position[0]) + x1, int(position[1]) + y1, int(position[0]) + x2, int(position[1]) + y2)

    def video_graph(
        self, objects: Sequence[SynthObject], positions: np.ndarray, visible: np.ndarray
    ) -> ParsedVideoSceneGraph:
        side = self.config.image_size
        near_distance = 2.0 * self.size
        keyframes = []
        previous_centres: dict[int, np.ndarray] = {}
        for t in range(positions.shape[0]):
            frame_objects, centres = [], {}
            for k, obj in enumerate(objects):
                if not visible[t, k]:
                    continue
                box = self.pixel_box(obj.shape, positions[t, k])
                frame_objects.append(
                    VideoObject(k + 1, tuple(c / side for c in box), label=obj.shape, attributes=[obj.colour])
                )
                centres[k] = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
            relations = []
            for a in centres:
                for b in centres:
                    if a != b:
                        relations.extend(
                            VideoRelation(a + 1, predicate, b + 1)
                            for predicate in _pair_relations(a, b, centres, previous_centres, near_distance)
                        )
            keyframes.append(
                VideoKeyframe(t, frame_objects, relations, timestamp=t / self.config.fps)
            )
            previous_centres = centres
        return ParsedVideoSceneGraph(keyframes)


def _pair_relations(
    a: int,
    b: int,
    centres: dict[int, np.ndarray],
    previous_centres: dict[int, np.ndarray],
    near_distance: float,
) -> list[str]:
    """Relations from object a to object b in one frame.

    One spatial relation by the dominant axis of the centre offset (horizontal on ties), ``near``
    when the centres are closer than two object sizes, and a motion relation when a moved since
    the previous frame: towards/away from b's previous centre (so it is a's own motion that counts).
    """
    dx, dy = centres[b] - centres[a]
    if abs(dx) >= abs(dy):
        relations = ["left of" if dx > 0 else "right of"]
    else:
        relations = ["above" if dy > 0 else "below"]
    if math.hypot(dx, dy) < near_distance:
        relations.append(NEAR_RELATION)
    if a in previous_centres and b in previous_centres and not np.array_equal(previous_centres[a], centres[a]):
        before = np.linalg.norm(previous_centres[b] - previous_centres[a])
        after = np.linalg.norm(previous_centres[b] - centres[a])
        if after < before:
            relations.append("moving towards")
        elif after > before:
            relations.append("moving away from")
    return relations


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
    """The caption of a clip script and its gold TSG (see the module docstring for the grammar)."""
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
# Sampling clips
# ----------------------------------------------------------------------------------------------


def _phase_frames(num_frames: int, num_phases: int) -> list[tuple[int, int]]:
    """Inclusive frame ranges of the phases, symmetric under time reversal."""
    if num_phases == 1:
        return [(0, num_frames - 1)]
    first_end = (num_frames - 1) // 2
    return [(0, first_end), (num_frames - 1 - first_end, num_frames - 1)]


def _sample_event(rng: np.random.Generator, kinds: Sequence[str], num_objects: int) -> ClipEvent:
    kind = kinds[rng.integers(len(kinds))]
    subject = int(rng.integers(num_objects))
    if kind == "move":
        return ClipEvent("move", subject, direction=DIRECTIONS[rng.integers(len(DIRECTIONS))])
    if kind in RELATIONAL_KINDS:
        others = [k for k in range(num_objects) if k != subject]
        return ClipEvent(kind, subject, landmark=others[rng.integers(len(others))])
    return ClipEvent(kind, subject)


def _moves(event: ClipEvent) -> bool:
    return event.kind in ("move", "towards", "away", "pass")


def _sample_script(rng: np.random.Generator, config: FinstaSynthConfig) -> ClipScript:
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


class _ClipRejected(Exception):
    """A sampled trajectory violates a constraint (leaves the frame, overlaps); sample again."""


def _synthesise_tracks(
    script: ClipScript, rng: np.random.Generator, config: FinstaSynthConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Integer stamp positions ``[T, K, 2]`` and visibility ``[T, K]`` that realise ``script``."""
    num_frames, num_objects, size = config.num_frames, config.objects_per_clip, config.object_size
    room = config.image_size - size  # valid top-left coordinates are 0..room
    positions = np.repeat(rng.uniform(0.1 * room, 0.9 * room, size=(1, num_objects, 2)), num_frames, axis=0)
    visible = np.ones((num_frames, num_objects), dtype=bool)
    # An object is anchored once it moved or served as a landmark; until then it may be re-placed.
    anchored = [False] * num_objects
    spans = _phase_frames(num_frames, len(script.phases))

    def travel() -> float:
        return rng.uniform(0.3, 0.6) * room

    def move_linearly(k: int, start_frame: int, end_frame: int, end: np.ndarray) -> None:
        start = positions[start_frame, k].copy()
        fractions = (np.arange(start_frame, end_frame + 1) - start_frame) / (end_frame - start_frame)
        positions[start_frame : end_frame + 1, k] = start + fractions[:, None] * (end - start)
        positions[end_frame + 1 :, k] = end

    for phase, (first, last) in zip(script.phases, spans):
        for event in phase:
            k = event.subject
            start = positions[first, k]
            if event.kind == "move":
                move_linearly(k, first, last, start + travel() * np.array(_DIRECTION_VECTORS[event.direction]))
            elif event.kind in ("towards", "away"):
                if not anchored[k]:  # free until now: start where the event has room to happen
                    angle = rng.uniform(0, 2 * math.pi)
                    low = 1.6 * size + (0.3 * room if event.kind == "towards" else 0.0)
                    radius = rng.uniform(low, low + 0.3 * room)
                    positions[: first + 1, k] = positions[first, event.landmark] + radius * np.array(
                        [math.cos(angle), math.sin(angle)]
                    )
                    start = positions[first, k]
                offset = start - positions[first, event.landmark]
                distance = float(np.linalg.norm(offset))
                if distance < 1e-6:
                    raise _ClipRejected
                away_direction = offset / distance
                if event.kind == "towards":
                    length = min(travel(), distance - 1.6 * size)
                    if length < 0.25 * room:
                        raise _ClipRejected
                    move_linearly(k, first, last, start - length * away_direction)
                else:
                    move_linearly(k, first, last, start + travel() * away_direction)
            elif event.kind == "pass":
                if anchored[k]:
                    raise _ClipRejected
                landmark = positions[first, event.landmark]
                along = int(rng.integers(2))  # 0: pass horizontally, 1: vertically
                across = 1 - along
                sign = 1.0 if rng.random() < 0.5 else -1.0
                begin, end = np.empty(2), np.empty(2)
                begin[across] = end[across] = landmark[across] + rng.choice([-1.0, 1.0]) * rng.uniform(
                    1.2 * size, 1.6 * size
                )
                begin[along] = landmark[along] - sign * rng.uniform(1.2 * size, 1.6 * size)
                end[along] = landmark[along] + sign * rng.uniform(1.2 * size, 1.6 * size)
                positions[: first + 1, k] = begin  # the subject was free until now: place it
                move_linearly(k, first, last, end)
            elif event.kind == "appear":
                lowest = 2 if len(script.phases) == 1 else first + 1
                highest = num_frames - 2 if len(script.phases) == 1 else last
                visible[: int(rng.integers(lowest, highest + 1)), k] = False
            elif event.kind == "disappear":
                lowest = 1 if len(script.phases) == 1 else first
                highest = num_frames - 3 if len(script.phases) == 1 else last - 1
                visible[int(rng.integers(lowest, highest + 1)) + 1 :, k] = False
            if _moves(event):
                anchored[k] = True
            if event.landmark is not None:
                anchored[event.landmark] = True

    # Translating the whole clip keeps every event and relation; it fits the clip into the frame.
    lowest, highest = positions.min(axis=(0, 1)), positions.max(axis=(0, 1))
    if (highest - lowest > room).any():
        raise _ClipRejected
    positions += rng.uniform(-lowest, room - highest)
    positions = np.rint(positions).astype(np.int64)
    _check_tracks(script, positions, visible, spans, config)
    return positions, visible


def _check_tracks(
    script: ClipScript,
    positions: np.ndarray,
    visible: np.ndarray,
    spans: list[tuple[int, int]],
    config: FinstaSynthConfig,
) -> None:
    size, room = config.object_size, config.image_size - config.object_size
    if positions.min() < 0 or positions.max() > room:
        raise _ClipRejected
    num_objects = positions.shape[1]
    for a in range(num_objects):
        for b in range(a + 1, num_objects):
            both = visible[:, a] & visible[:, b]
            gap = np.abs(positions[both, a] - positions[both, b]).max(axis=-1, initial=0) if both.any() else None
            if gap is not None and gap.min() < size + 1:
                raise _ClipRejected  # objects must not touch, so every box matches its own pixels
    for phase, (first, last) in zip(script.phases, spans):
        for event in phase:
            track = positions[first : last + 1, event.subject].astype(float)
            if _moves(event) and np.array_equal(track[0], track[-1]):
                raise _ClipRejected
            if event.kind in ("towards", "away"):
                distances = np.linalg.norm(track - positions[first, event.landmark], axis=-1)
                steps = np.diff(distances) * (1 if event.kind == "away" else -1)
                if (steps < 0).any():
                    raise _ClipRejected  # distance must change monotonically
            if event.kind == "pass":
                offsets = track[[0, -1]] - positions[first, event.landmark]
                if not (offsets[0] * offsets[1] < 0).any():
                    raise _ClipRejected  # must end on the other side of the landmark


_PLACEMENTS_PER_SCRIPT = 50


def _sample_clip(
    rng: np.random.Generator, config: FinstaSynthConfig
) -> tuple[list[SynthObject], ClipScript, np.ndarray, np.ndarray]:
    pairs = [(shape, colour) for shape in config.shapes for colour in config.colours]
    chosen = rng.choice(len(pairs), size=config.objects_per_clip, replace=False)
    objects = [SynthObject(*pairs[i]) for i in chosen]
    # Placement is retried for the same script before a new script is drawn, so that events that are
    # harder to place (relational ones) are not under-represented.
    for _ in range(max(1, config.max_attempts // _PLACEMENTS_PER_SCRIPT)):
        script = _sample_script(rng, config)
        for _ in range(_PLACEMENTS_PER_SCRIPT):
            try:
                positions, visible = _synthesise_tracks(script, rng, config)
            except _ClipRejected:
                continue
            return objects, script, positions, visible
    raise RuntimeError(
        f"could not place a clip in {config.max_attempts} attempts; increase image_size or reduce "
        f"object_size/objects_per_clip (image_size={config.image_size}, object_size={config.object_size})"
    )


def _build_sample(
    renderer: _Renderer,
    video_id: str,
    split: str,
    objects: list[SynthObject],
    script: ClipScript,
    positions: np.ndarray,
    visible: np.ndarray,
) -> FinstaSynthSample:
    caption, text_graph = render_caption(script, objects)
    return FinstaSynthSample(
        video_id=video_id,
        split=split,
        frames=renderer.frames(objects, positions, visible),
        caption=caption,
        text_graph=text_graph,
        video_graph=renderer.video_graph(objects, positions, visible),
        objects=list(objects),
        script=script,
        positions=positions,
        visible=visible,
    )


def reverse_sample(sample: FinstaSynthSample, config: FinstaSynthConfig) -> FinstaSynthSample:
    """The same clip played backwards: frames reversed, caption and both graphs of the reversed script."""
    renderer = _Renderer(config)
    return _build_sample(
        renderer,
        sample.video_id,
        sample.split,
        sample.objects,
        sample.script.reversed(),
        sample.positions[::-1].copy(),
        sample.visible[::-1].copy(),
    )


_SPLIT_IDS = {"train": 0, "test": 1, "negatives": 2}


def generate_sample(
    config: FinstaSynthConfig, split: str, index: int, renderer: Optional[_Renderer] = None
) -> FinstaSynthSample:
    """Clip ``index`` of ``split`` (``"train"`` or ``"test"``); depends only on ``(config, split, index)``."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    rng = np.random.default_rng([config.seed, _SPLIT_IDS[split], index])
    objects, script, positions, visible = _sample_clip(rng, config)
    if rng.random() < 0.5:  # makes the distribution of scripts symmetric under time reversal
        script, positions, visible = script.reversed(), positions[::-1].copy(), visible[::-1].copy()
    offset = 0 if split == "train" else config.num_train
    renderer = renderer or _Renderer(config)
    return _build_sample(renderer, f"video{offset + index}", split, objects, script, positions, visible)


# ----------------------------------------------------------------------------------------------
# Hard negatives
# ----------------------------------------------------------------------------------------------


def _mentioned(script: ClipScript) -> list[int]:
    """Entities in order of first mention."""
    seen: dict[int, None] = {}
    for event in script.events():
        for entity in event.entities():
            seen.setdefault(entity, None)
    return list(seen)


def _negative(
    suite: str, index: int, sample: FinstaSynthSample, script: ClipScript, objects: Sequence[SynthObject], change: str
) -> HardNegative:
    negative, negative_graph = render_caption(script, objects)
    return HardNegative(
        suite, index, sample.video_id, sample.caption, negative, sample.text_graph, negative_graph, change
    )


def _temporal_negative(index: int, sample: FinstaSynthSample) -> Optional[HardNegative]:
    """The caption of the time-reversed clip, or None when reversal does not change the caption."""
    reversed_script = sample.script.reversed()
    negative = _negative("temporal", index, sample, reversed_script, sample.objects, "time-reversed clip")
    return None if negative.negative == sample.caption else negative


def _binding_negative(
    index: int, sample: FinstaSynthSample, rng: np.random.Generator
) -> Optional[HardNegative]:
    """Swap the colours of two mentioned objects with different shapes and colours.

    Skipped when a swapped object would exist in the clip (the negative must be false).
    """
    mentioned = _mentioned(sample.script)
    existing = set(sample.objects)
    candidates = []
    for i, a in enumerate(mentioned):
        for b in mentioned[i + 1 :]:
            first, second = sample.objects[a], sample.objects[b]
            swapped = (SynthObject(first.shape, second.colour), SynthObject(second.shape, first.colour))
            if first.shape != second.shape and first.colour != second.colour and not existing & set(swapped):
                candidates.append((a, b, swapped))
    if not candidates:
        return None
    a, b, swapped = candidates[rng.integers(len(candidates))]
    objects = list(sample.objects)
    objects[a], objects[b] = swapped
    change = f"colours {sample.objects[a].colour}/{sample.objects[b].colour} swapped"
    return _negative("binding", index, sample, sample.script, objects, change)


def _role_negative(index: int, sample: FinstaSynthSample) -> Optional[HardNegative]:
    """Swap subject and object of the first relational event (towards, away from, passes)."""
    phases = [list(phase) for phase in sample.script.phases]
    for phase in phases:
        for position, event in enumerate(phase):
            if event.kind in RELATIONAL_KINDS:
                phase[position] = replace(event, subject=event.landmark, landmark=event.subject)
                script = ClipScript(tuple(tuple(p) for p in phases))
                change = f"subject and object of {event.kind!r} swapped"
                return _negative("role", index, sample, script, sample.objects, change)
    return None


def _static_negative(
    index: int, sample: FinstaSynthSample, config: FinstaSynthConfig, rng: np.random.Generator
) -> Optional[HardNegative]:
    """Replace one mentioned object's colour or shape by one absent from the whole clip."""
    used_colours = {obj.colour for obj in sample.objects}
    used_shapes = {obj.shape for obj in sample.objects}
    options = []
    for entity in _mentioned(sample.script):
        obj = sample.objects[entity]
        options += [(entity, SynthObject(obj.shape, c), "colour") for c in config.colours if c not in used_colours]
        options += [(entity, SynthObject(s, obj.colour), "shape") for s in config.shapes if s not in used_shapes]
    if not options:
        return None
    entity, new_object, what = options[rng.integers(len(options))]
    objects = list(sample.objects)
    objects[entity] = new_object
    old = sample.objects[entity]
    change = f"{what} {getattr(old, what)} -> {getattr(new_object, what)}"
    return _negative("static", index, sample, sample.script, objects, change)


def build_hard_negatives(
    test: Sequence[FinstaSynthSample], config: FinstaSynthConfig
) -> dict[str, list[HardNegative]]:
    """All four suites over the test clips (a clip is left out of a suite it cannot serve)."""
    suites: dict[str, list[HardNegative]] = {name: [] for name in HARD_NEGATIVE_SUITES}
    for index, sample in enumerate(test):
        rng = np.random.default_rng([config.seed, _SPLIT_IDS["negatives"], index])
        for negative in (
            _temporal_negative(index, sample),
            _binding_negative(index, sample, rng),
            _role_negative(index, sample),
            _static_negative(index, sample, config, rng),
        ):
            if negative is not None:
                suites[negative.suite].append(negative)
    return suites


def generate_finsta_synth(config: Optional[FinstaSynthConfig] = None) -> FinstaSynthDataset:
    """Generate the train and test clips and the hard-negative suites of the test split."""
    config = config or FinstaSynthConfig()
    renderer = _Renderer(config)
    train = [generate_sample(config, "train", i, renderer) for i in range(config.num_train)]
    test = [generate_sample(config, "test", i, renderer) for i in range(config.num_test)]
    return FinstaSynthDataset(config, train, test, build_hard_negatives(test, config))


# ----------------------------------------------------------------------------------------------
# Export (MSR-VTT layout)
# ----------------------------------------------------------------------------------------------


def _pick_codec(preferred: str) -> tuple[str, str, dict[str, str]]:
    """(codec, pixel format, options) for near-lossless mp4: x264 lossless 4:4:4, else high-quality mpeg4."""
    import av

    candidates = {
        "libx264": ("libx264", "yuv444p", {"qp": "0", "preset": "medium"}),
        "mpeg4": ("mpeg4", "yuv420p", {"qscale": "1"}),
    }
    if preferred not in candidates:
        raise ValueError(f"codec must be one of {sorted(candidates)}, got {preferred!r}")
    for name in [preferred] + [c for c in candidates if c != preferred]:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # codec missing from this FFmpeg build
            continue
        return candidates[name]
    raise RuntimeError("PyAV's FFmpeg has neither libx264 nor mpeg4 encoders")


def write_video(
    frames: np.ndarray, path: Union[str, os.PathLike], fps: float = 1.0, codec: str = "libx264"
) -> None:
    """Encode ``uint8 [T, H, W, 3]`` RGB frames as an mp4 (lossless x264 4:4:4 by default)."""
    import av

    name, pixel_format, options = _pick_codec(codec)
    frames = np.ascontiguousarray(frames)
    with av.open(os.fspath(path), mode="w") as container:
        stream = container.add_stream(name, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pixel_format
        stream.options = options
        if name == "mpeg4":
            stream.codec_context.bit_rate = 20_000_000
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_jsonl(path: Path, records: Sequence[dict]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")


def export_finsta_synth(
    dataset: FinstaSynthDataset,
    root: Union[str, os.PathLike],
    codec: str = "libx264",
    progress: bool = True,
) -> Path:
    """Write ``dataset`` under ``root`` in the MSR-VTT layout plus the Finsta files; returns ``root``.

    Files: ``videos/all/video{N}.mp4``, ``MSRVTT_data.json``, ``MSRVTT_train.9k.csv``,
    ``MSRVTT_JSFUSION_test.csv`` (captions with commas are quoted, as a CSV reader expects),
    ``scene_graphs/video{N}.json``, ``text_scene_graphs.jsonl`` (every true and negative caption) and
    ``hard_negatives/{temporal,binding,role,static}.jsonl`` (``video_id``, ``caption``, ``negative`` and
    ``change``, a readable note of what was altered).

    ``codec="libx264"`` is lossless in YUV 4:4:4 (decoded RGB within 1 of the rendered frames);
    ``"mpeg4"``, the fallback when x264 is missing, is 4:2:0 and smears colour at object edges.
    """
    config = dataset.config
    root = Path(root)
    for folder in ("videos/all", "scene_graphs", "hard_negatives"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    samples = dataset.train + dataset.test
    iterator = samples
    if progress:
        try:
            from tqdm.auto import tqdm

            iterator = tqdm(samples, desc="exporting Finsta-Synth", unit="clip")
        except ImportError:
            pass
    for sample in iterator:
        video_name = f"{sample.video_id}.mp4"
        write_video(sample.frames, root / "videos" / "all" / video_name, fps=config.fps, codec=codec)
        write_video_scene_graph(
            sample.video_graph,
            root / "scene_graphs" / f"{sample.video_id}.json",
            width=config.image_size,
            height=config.image_size,
            video=video_name,
            fps=config.fps,
            num_frames=config.num_frames,
        )

    duration = config.num_frames / config.fps
    data = {
        "info": {
            "description": "Finsta-Synth: procedural clips of coloured shapes with gold scene graphs",
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
        },
        "videos": [
            {
                "video_id": s.video_id,
                "category": 0,
                "url": "",
                "start time": 0.0,
                "end time": duration,
                "split": s.split,
                "id": int(s.video_id[len("video") :]),
            }
            for s in samples
        ],
        "sentences": [{"caption": s.caption, "video_id": s.video_id, "sen_id": i} for i, s in enumerate(samples)],
    }
    with open(root / "MSRVTT_data.json", "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    with open(root / "MSRVTT_train.9k.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video_id"])
        writer.writerows([s.video_id] for s in dataset.train)
    with open(root / "MSRVTT_JSFUSION_test.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["", "key", "vid_key", "video_id", "sentence"])
        for i, s in enumerate(dataset.test):
            number = s.video_id[len("video") :]
            writer.writerow([i, f"ret{i}", f"msr{number}", s.video_id, s.caption])

    graphs: dict[str, ParsedTextSceneGraph] = {s.caption: s.text_graph for s in samples}
    for suite in dataset.hard_negatives.values():
        graphs.update({negative.negative: negative.negative_graph for negative in suite})
    _write_jsonl(root / "text_scene_graphs.jsonl", [{"caption": c, "graph": g.to_dict()} for c, g in graphs.items()])
    for name in HARD_NEGATIVE_SUITES:
        records = [
            {"video_id": n.video_id, "caption": n.caption, "negative": n.negative, "change": n.change}
            for n in dataset.hard_negatives.get(name, [])
        ]
        _write_jsonl(root / "hard_negatives" / f"{name}.jsonl", records)
    return root


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m modeling_finsta.finsta_synth --out DIR [--num-train N --num-test M --seed S ...]``."""
    parser = argparse.ArgumentParser(description="Generate and export the Finsta-Synth dataset (MSR-VTT layout).")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--num-train", type=int, default=1000)
    parser.add_argument("--num-test", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--objects-per-clip", type=int, default=2)
    parser.add_argument("--fps", type=float, default=1.0)
    parser.add_argument("--codec", default="libx264", choices=["libx264", "mpeg4"])
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    config = FinstaSynthConfig(
        seed=args.seed,
        num_train=args.num_train,
        num_test=args.num_test,
        num_frames=args.num_frames,
        image_size=args.image_size,
        objects_per_clip=args.objects_per_clip,
        fps=args.fps,
    )
    dataset = generate_finsta_synth(config)
    export_finsta_synth(dataset, args.out, codec=args.codec, progress=not args.no_progress)
    counts = ", ".join(f"{name} {len(items)}" for name, items in dataset.hard_negatives.items())
    print(
        f"wrote {len(dataset.train)} train and {len(dataset.test)} test clips to {args.out} (hard negatives: {counts})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
