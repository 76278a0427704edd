"""Finsta-Synth data structures: objects, events and scripts of a clip, samples, hard negatives, datasets."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from ..scene_graphs import ParsedTextSceneGraph, ParsedVideoSceneGraph
from .config import FinstaSynthConfig

_REVERSED_DIRECTION = {"left": "right", "right": "left", "up": "down", "down": "up"}
_REVERSED_KIND = {"towards": "away", "away": "towards", "appear": "disappear", "disappear": "appear"}


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
    video_index: int  # index into the split the suite belongs to (``FinstaSynthDataset.test`` or ``.compositional``)
    video_id: str
    caption: str
    negative: str
    caption_graph: ParsedTextSceneGraph
    negative_graph: ParsedTextSceneGraph
    change: str  # human-readable description of what differs


@dataclass
class FinstaSynthDataset:
    """Train and in-distribution test clips with the test clips' suites; with ``config.held_out``, also the
    compositional held-out split (clips with combinations training never shows) and its own suites."""

    config: FinstaSynthConfig
    train: list[FinstaSynthSample]
    test: list[FinstaSynthSample]
    hard_negatives: dict[str, list[HardNegative]] = field(default_factory=dict)
    compositional: list[FinstaSynthSample] = field(default_factory=list)
    compositional_hard_negatives: dict[str, list[HardNegative]] = field(default_factory=dict)

    def split(self, name: str) -> tuple[list[FinstaSynthSample], dict[str, list[HardNegative]]]:
        """``(clips, suites)`` of an evaluation split: ``"test"`` (in-distribution) or ``"compositional"``."""
        if name not in ("test", "compositional"):
            raise ValueError(f"split must be 'test' or 'compositional', got {name!r}")
        return (self.test, self.hard_negatives) if name == "test" else (self.compositional, self.compositional_hard_negatives)
