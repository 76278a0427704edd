"""Finsta-Synth hard-negative suites over the test clips: temporal, binding, role and static.

What each suite changes, and why an order-blind video model sits at 50% on ``temporal``, is documented
in the package docstring (``modeling_finsta/synth/__init__.py``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence

import numpy as np

from .config import RELATIONAL_KINDS, SPLIT_IDS, FinstaSynthConfig
from .grammar import render_caption
from .samples import ClipScript, FinstaSynthSample, HardNegative, SynthObject

HARD_NEGATIVE_SUITES = ("temporal", "binding", "role", "static")


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
    test: Sequence[FinstaSynthSample], config: FinstaSynthConfig, stream: str = "negatives"
) -> dict[str, list[HardNegative]]:
    """All four suites over the test clips (a clip is left out of a suite it cannot serve).

    ``stream`` names the generator stream (``SPLIT_IDS``) of the random choices: ``"negatives"`` for
    the in-distribution test split, ``"compositional-negatives"`` for the compositional one.
    """
    suites: dict[str, list[HardNegative]] = {name: [] for name in HARD_NEGATIVE_SUITES}
    for index, sample in enumerate(test):
        rng = np.random.default_rng([config.seed, SPLIT_IDS[stream], index])
        for negative in (
            _temporal_negative(index, sample),
            _binding_negative(index, sample, rng),
            _role_negative(index, sample),
            _static_negative(index, sample, config, rng),
        ):
            if negative is not None:
                suites[negative.suite].append(negative)
    return suites
