"""Finsta-Synth generation: clips of a split, their time reversal, and whole datasets with their
hard-negative suites.

The dataset itself (grammar, gold conventions, suites) is documented in the package docstring
(``modeling_finsta/synth/__init__.py``).
"""

from __future__ import annotations

from typing import Optional

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


def generate_sample(
    config: FinstaSynthConfig, split: str, index: int, renderer: Optional[Renderer] = None
) -> FinstaSynthSample:
    """Clip ``index`` of ``split`` (``"train"`` or ``"test"``); depends only on ``(config, split, index)``."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    rng = np.random.default_rng([config.seed, SPLIT_IDS[split], index])
    objects, script, positions, visible = sample_clip(rng, config)
    if rng.random() < 0.5:  # makes the distribution of scripts symmetric under time reversal
        script, positions, visible = script.reversed(), positions[::-1].copy(), visible[::-1].copy()
    offset = 0 if split == "train" else config.num_train
    renderer = renderer or Renderer(config)
    return _build_sample(renderer, f"video{offset + index}", split, objects, script, positions, visible)


def generate_finsta_synth(config: Optional[FinstaSynthConfig] = None) -> FinstaSynthDataset:
    """Generate the train and test clips and the hard-negative suites of the test split."""
    config = config or FinstaSynthConfig()
    renderer = Renderer(config)
    train = [generate_sample(config, "train", i, renderer) for i in range(config.num_train)]
    test = [generate_sample(config, "test", i, renderer) for i in range(config.num_test)]
    return FinstaSynthDataset(config, train, test, build_hard_negatives(test, config))
