"""Training data for Finsta: processed per-example tensors, hard-negative captions, the Finsta-Synth tokenizer.

`encode_examples` runs `FinstaProcessor` over captions and decoded videos in chunks and splits the
result into per-example dicts of unbatched tensors, which `FinstaExampleDataset` serves and
`FinstaDataCollator` pads back into batches. Each example may carry one hard-negative caption
(``negative_input_ids``, ``negative_attention_mask``, ``negative_text_scene_graph``), which the
contrastive losses use as an extra candidate for its video.

`finsta_synth_tokenizer` is the closed-vocabulary word tokenizer (``word_tokenizer.py``) of
Finsta-Synth's grammar, so a model can be trained from scratch on it without downloading anything.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch.utils.data import Dataset

from ..scene_graph_batching import split_batch
from ..scene_graphs import ParsedTextSceneGraph, ParsedVideoSceneGraph
from .word_tokenizer import build_word_tokenizer


def encode_examples(
    processor,
    captions: Sequence[str],
    videos: Sequence[Any],
    *,
    video_scene_graphs: Optional[Sequence[Optional[ParsedVideoSceneGraph]]] = None,
    text_scene_graphs: Optional[Sequence[Optional[ParsedTextSceneGraph]]] = None,
    negative_captions: Optional[Sequence[Optional[str]]] = None,
    negative_text_scene_graphs: Optional[Sequence[Optional[ParsedTextSceneGraph]]] = None,
    chunk_size: int = 64,
    show_progress: bool = False,
) -> list[dict[str, Any]]:
    """Process (caption, video) pairs into per-example tensor dicts (see the module docstring)."""
    if len(captions) != len(videos):
        raise ValueError(f"encode_examples: {len(captions)} captions but {len(videos)} videos")
    examples: list[dict[str, Any]] = []
    starts = range(0, len(captions), chunk_size)
    if show_progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="processing examples", unit="chunk")
    for start in starts:
        stop = min(start + chunk_size, len(captions))
        part = slice(start, stop)
        batch = dict(
            processor(
                text=list(captions[part]),
                videos=list(videos[part]),
                video_scene_graphs=None if video_scene_graphs is None else list(video_scene_graphs[part]),
                text_scene_graphs=None if text_scene_graphs is None else list(text_scene_graphs[part]),
            )
        )
        chunk = split_batch(batch, stop - start)
        if negative_captions is not None:
            negatives = list(negative_captions[part])
            present = [n is not None for n in negatives]
            texts = [n if n is not None else c for n, c in zip(negatives, captions[part])]
            graphs = None if negative_text_scene_graphs is None else list(negative_text_scene_graphs[part])
            encoded = dict(processor(text=texts, text_scene_graphs=graphs))
            for example, negative, has_negative in zip(chunk, split_batch(encoded, stop - start), present):
                example["negative_input_ids"] = negative["input_ids"]
                example["negative_attention_mask"] = negative["attention_mask"]
                if "text_scene_graph" in negative:
                    example["negative_text_scene_graph"] = negative["text_scene_graph"]
                example["negative_mask"] = torch.tensor(has_negative)
        examples.extend(chunk)
    return examples


def with_text_graphs(
    examples: Sequence[dict[str, Any]],
    processor,
    captions: Sequence[str],
    text_scene_graphs: Optional[Sequence[Optional[ParsedTextSceneGraph]]] = None,
    negative_captions: Optional[Sequence[Optional[str]]] = None,
    negative_text_scene_graphs: Optional[Sequence[Optional[ParsedTextSceneGraph]]] = None,
    chunk_size: int = 256,
) -> list[dict[str, Any]]:
    """The same examples with other text scene graphs (and no ``grounding``, which links to a gold DSG).

    ``text_scene_graphs=None`` parses the captions with the processor's parser (a fully automatic
    pipeline); negatives likewise. Videos are not touched (the new dicts share their tensors).
    """
    if len(captions) != len(examples):
        raise ValueError(f"with_text_graphs: {len(captions)} captions for {len(examples)} examples")

    def encoded(texts: Sequence[str], graphs: Optional[Sequence[Optional[ParsedTextSceneGraph]]]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for start in range(0, len(texts), chunk_size):
            part = slice(start, start + chunk_size)
            batch = dict(processor(text=list(texts[part]), text_scene_graphs=None if graphs is None else list(graphs[part])))
            rows.extend(split_batch(batch, len(texts[part])))
        return rows

    rows = encoded(captions, text_scene_graphs)
    negative_rows = None
    if negative_captions is not None:
        texts = [n if n is not None else c for n, c in zip(negative_captions, captions)]
        negative_rows = encoded(texts, negative_text_scene_graphs)
    result = []
    for index, example in enumerate(examples):
        example = {k: v for k, v in example.items() if k not in ("text_scene_graph", "negative_text_scene_graph")}
        if "text_scene_graph" in rows[index]:
            example["text_scene_graph"] = rows[index]["text_scene_graph"]
        if negative_rows is not None and "text_scene_graph" in negative_rows[index]:
            example["negative_text_scene_graph"] = negative_rows[index]["text_scene_graph"]
        result.append(example)
    return result


class FinstaExampleDataset(Dataset):
    """A list of processed examples (dicts of unbatched tensors) for `Trainer` or a DataLoader."""

    def __init__(self, examples: Sequence[dict[str, Any]]):
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.examples[index]

    def without(self, *keys: str) -> "FinstaExampleDataset":
        """The same examples without some fields (e.g. the annotated DSG, to train on the latent one).

        ``"grounding"`` removes the text graphs' cross-modal grounding rows (derived from the gold DSG).
        """
        def strip(example: dict[str, Any]) -> dict[str, Any]:
            kept = {k: v for k, v in example.items() if k not in keys}
            if "grounding" in keys and isinstance(kept.get("text_scene_graph"), dict):
                kept["text_scene_graph"] = {k: v for k, v in kept["text_scene_graph"].items() if k != "grounding"}
            return kept

        return FinstaExampleDataset([strip(e) for e in self.examples])


def finsta_synth_tokenizer(config=None):
    """A word tokenizer covering every caption Finsta-Synth's grammar can produce for ``config``."""
    from ..synth import DIRECTIONS, FinstaSynthConfig

    config = config or FinstaSynthConfig()
    grammar = "the moves towards away from passes appears disappears stays still while then ,".split()
    return build_word_tokenizer([*grammar, *DIRECTIONS, *config.shapes, *config.colours])


def finsta_synth_examples(
    samples,
    processor,
    *,
    annotated: bool = True,
    hard_negatives: Optional[dict] = None,
    show_progress: bool = False,
) -> list[dict[str, Any]]:
    """Per-example tensors for Finsta-Synth samples, with gold TSGs and (if ``annotated``) gold DSGs.

    ``hard_negatives`` maps a sample index to a `HardNegative` whose caption becomes that example's
    hard-negative caption (see `finsta_synth_hard_negatives`).
    """
    negatives = None
    negative_graphs = None
    if hard_negatives is not None:
        chosen = [hard_negatives.get(i) for i in range(len(samples))]
        negatives = [None if n is None else n.negative for n in chosen]
        negative_graphs = [None if n is None else n.negative_graph for n in chosen]
    return encode_examples(
        processor,
        [s.caption for s in samples],
        [s.frames for s in samples],
        video_scene_graphs=[s.video_graph for s in samples] if annotated else None,
        text_scene_graphs=[s.text_graph for s in samples],
        negative_captions=negatives,
        negative_text_scene_graphs=negative_graphs,
        show_progress=show_progress,
    )


def finsta_synth_hard_negatives(samples, config, suites: Sequence[str] = ("temporal", "binding", "role"), seed: int = 0) -> dict:
    """One hard negative per sample where possible, drawn from ``suites`` (round-robin by index)."""
    import random

    from ..synth import build_hard_negatives

    by_suite = build_hard_negatives(samples, config)
    options: dict[int, list] = {}
    for suite in suites:
        for negative in by_suite.get(suite, []):
            options.setdefault(negative.video_index, []).append(negative)
    rng = random.Random(seed)
    return {index: rng.choice(candidates) for index, candidates in options.items()}


__all__ = [
    "FinstaExampleDataset",
    "encode_examples",
    "finsta_synth_examples",
    "finsta_synth_hard_negatives",
    "finsta_synth_tokenizer",
]
