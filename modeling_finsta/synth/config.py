"""Finsta-Synth vocabularies and `FinstaSynthConfig`, everything that determines a dataset.

The grammar and the gold-graph conventions are documented in the package docstring
(``modeling_finsta/synth/__init__.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

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

SPLIT_IDS = {"train": 0, "test": 1, "negatives": 2, "compositional": 3, "compositional-negatives": 4}
"""Generator stream of each split: clip ``index`` of ``split`` draws from a generator seeded by
``(config.seed, SPLIT_IDS[split], index)``; the hard negatives of test clip ``index`` use ``"negatives"``
(``"compositional-negatives"`` for the compositional split)."""

ROLES = ("subject", "landmark")
"""The part an object plays in an event: what it does (subject) or what it is relative to (landmark)."""

COMPOSITIONAL_HELD_OUT: tuple[tuple[str, str, str, str], ...] = (
    ("yellow", "triangle", "towards", "subject"),
    ("red", "square", "away", "subject"),
    ("blue", "circle", "pass", "subject"),
    ("green", "triangle", "appear", "subject"),
    ("red", "circle", "towards", "landmark"),
    ("yellow", "square", "pass", "landmark"),
)
"""The benchmark's held-out combinations for the default vocabularies: every kind of event, both roles."""


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
        held_out: ``(colour, shape, event kind, role)`` combinations (role in ``ROLES``) that no
            training or in-distribution test clip contains, e.g. ``("yellow", "triangle", "towards",
            "subject")``: no yellow triangle ever moves towards anything in training.
        num_compositional: clips of the compositional held-out split; each contains at least one
            ``held_out`` combination (so none of its captions occurs in training).
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
    held_out: tuple[tuple[str, str, str, str], ...] = ()
    num_compositional: int = 0

    def __post_init__(self) -> None:
        self.held_out = tuple(tuple(combination) for combination in self.held_out)
        for combination in self.held_out:
            if len(combination) != 4:
                raise ValueError(f"FinstaSynthConfig.held_out: expected (colour, shape, event kind, role), got {combination}")
            colour, shape, kind, role = combination
            if colour not in self.colours or shape not in self.shapes or kind not in self.event_kinds or role not in ROLES:
                raise ValueError(
                    f"FinstaSynthConfig.held_out: {combination} needs a colour of {self.colours}, a shape of {self.shapes}, "
                    f"an event kind of {self.event_kinds} and a role of {ROLES}"
                )
            if role == "landmark" and kind not in RELATIONAL_KINDS:
                raise ValueError(f"FinstaSynthConfig.held_out: {combination}: only {RELATIONAL_KINDS} events have a landmark")
        if self.num_compositional < 0 or (self.num_compositional and not self.held_out):
            raise ValueError("FinstaSynthConfig.num_compositional needs held_out combinations (and must be >= 0)")
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
