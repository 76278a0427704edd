"""Finsta-Synth generation: clips of a split, their time reversal, and whole datasets with their
hard-negative suites.

The dataset itself (grammar, gold conventions, suites) is documented in the package docstring
(``modeling_finsta/synth/__init__.py``).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .config import SPLIT_IDS, FinstaSynthConfig
from .grammar import render_caption
from .hard_negatives import build_hard_negatives
from .samples import ClipScript, FinstaSynthDataset, FinstaSynthSample, SynthObject
from .tracks import Renderer, sample_clip


def _build_sample(
    renderer: Renderer,
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
    renderer = Renderer(config)
    return _build_sample(
        renderer,
        sample.video_id,
        sample.split,
        sample.objects,
        sample.script.reversed(),
        sample.positions[::-1].copy(),
        sample.visible[::-1].copy(),
    )


SPLITS = ("train", "test", "compositional")


def script_combinations(script: ClipScript, objects: Sequence[SynthObject]) -> set[tuple[str, str, str, str]]:
    """Every ``(colour, shape, event kind, role)`` a clip's caption states (see ``FinstaSynthConfig.held_out``)."""
    combinations = set()
    for event in script.events():
        subject = objects[event.subject]
        combinations.add((subject.colour, subject.shape, event.kind, "subject"))
        if event.landmark is not None:
            landmark = objects[event.landmark]
            combinations.add((landmark.colour, landmark.shape, event.kind, "landmark"))
    return combinations


def generate_sample(
    config: FinstaSynthConfig, split: str, index: int, renderer: Optional[Renderer] = None
) -> FinstaSynthSample:
    """Clip ``index`` of ``split`` (``"train"``, ``"test"`` or ``"compositional"``); depends only on ``(config, split, index)``.

    With ``config.held_out``, train and test clips are redrawn (from the same generator) until they
    contain no held-out combination, and compositional clips until they contain one. Without it,
    train and test clips are exactly those of earlier versions.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "compositional" and not config.held_out:
        raise ValueError("the compositional split needs FinstaSynthConfig.held_out combinations")
    rng = np.random.default_rng([config.seed, SPLIT_IDS[split], index])
    held_out = set(config.held_out)
    for _ in range(config.max_attempts):
        objects, script, positions, visible = sample_clip(rng, config)
        if rng.random() < 0.5:  # makes the distribution of scripts symmetric under time reversal
            script, positions, visible = script.reversed(), positions[::-1].copy(), visible[::-1].copy()
        holds_out = bool(script_combinations(script, objects) & held_out)
        if holds_out == (split == "compositional"):
            break
    else:
        raise RuntimeError(f"no {split} clip after {config.max_attempts} draws; check FinstaSynthConfig.held_out")
    offset = {"train": 0, "test": config.num_train, "compositional": config.num_train + config.num_test}[split]
    renderer = renderer or Renderer(config)
    return _build_sample(renderer, f"video{offset + index}", split, objects, script, positions, visible)


def generate_finsta_synth(config: Optional[FinstaSynthConfig] = None) -> FinstaSynthDataset:
    """Generate the train and test clips and the hard-negative suites of the test split."""
    config = config or FinstaSynthConfig()
    renderer = Renderer(config)
    train = [generate_sample(config, "train", i, renderer) for i in range(config.num_train)]
    test = [generate_sample(config, "test", i, renderer) for i in range(config.num_test)]
    compositional = [generate_sample(config, "compositional", i, renderer) for i in range(config.num_compositional)]
    return FinstaSynthDataset(
        config,
        train,
        test,
        build_hard_negatives(test, config),
        compositional,
        build_hard_negatives(compositional, config, "compositional-negatives") if compositional else {},
    )
