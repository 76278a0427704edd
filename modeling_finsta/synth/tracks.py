"""Finsta-Synth tracks and pixels: placing and moving objects so that a script holds, rendering the
frames and the gold dynamic scene graph (DSG).

The gold DSG conventions are documented in the package docstring (``modeling_finsta/synth/__init__.py``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..scene_graphs import ParsedVideoSceneGraph, VideoKeyframe, VideoObject, VideoRelation
from .config import PALETTE, SHAPES, FinstaSynthConfig
from .grammar import sample_script
from .samples import ClipEvent, ClipScript, SynthObject

# Relations of the gold DSG, per frame and ordered pair of visible objects.
SPATIAL_RELATIONS = ("left of", "right of", "above", "below")
NEAR_RELATION = "near"
MOTION_RELATIONS = ("moving towards", "moving away from")

_DIRECTION_VECTORS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}


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


class Renderer:
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
# Tracks
# ----------------------------------------------------------------------------------------------


def _phase_frames(num_frames: int, num_phases: int) -> list[tuple[int, int]]:
    """Inclusive frame ranges of the phases, symmetric under time reversal."""
    if num_phases == 1:
        return [(0, num_frames - 1)]
    first_end = (num_frames - 1) // 2
    return [(0, first_end), (num_frames - 1 - first_end, num_frames - 1)]


def _moves(event: ClipEvent) -> bool:
    return event.kind in ("move", "towards", "away", "pass")


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


def sample_clip(
    rng: np.random.Generator, config: FinstaSynthConfig
) -> tuple[list[SynthObject], ClipScript, np.ndarray, np.ndarray]:
    """Objects, script, integer stamp positions ``[T, K, 2]`` and visibility ``[T, K]`` of a random clip."""
    pairs = [(shape, colour) for shape in config.shapes for colour in config.colours]
    chosen = rng.choice(len(pairs), size=config.objects_per_clip, replace=False)
    objects = [SynthObject(*pairs[i]) for i in chosen]
    # Placement is retried for the same script before a new script is drawn, so that events that are
    # harder to place (relational ones) are not under-represented.
    for _ in range(max(1, config.max_attempts // _PLACEMENTS_PER_SCRIPT)):
        script = sample_script(rng, config)
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


def tracks_for_script(
    script: ClipScript, rng: np.random.Generator, config: FinstaSynthConfig, attempts: int = _PLACEMENTS_PER_SCRIPT
) -> tuple[np.ndarray, np.ndarray]:
    """Integer stamp positions ``[T, K, 2]`` and visibility ``[T, K]`` that realise a *given* script
    (``K = config.objects_per_clip``), retrying placements; the task suites (``synth/tasks.py``) use it
    to draw a clip of a chosen class."""
    for _ in range(attempts):
        try:
            return _synthesise_tracks(script, rng, config)
        except _ClipRejected:
            continue
    raise RuntimeError(f"could not place the script {script} in {attempts} attempts (image_size={config.image_size})")
