"""The models the demo compares, the Finsta-Synth data they share, and training / evaluating one of them.

Every model gets the same clips, hard-negative captions, steps, batch and schedule. What differs is
named in `VARIANTS`: the configuration, where the caption graphs come from (``gold``: Finsta-Synth's
own; ``parsed``: the project's caption parser, as for any real caption; ``shuffled``: gold graphs with
their edges permuted within each caption, a control) and the video graph (``annotated``: the gold DSG,
with the gold text-to-track grounding; ``latent``: slots from the host's own patch tokens, and no gold
video information of any kind, at training or test time).
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import torch

from ..configuration_finsta import FinstaConfig
from ..modeling_finsta import FinstaModel
from ..processing_finsta import FinstaProcessor
from ..scene_graphs import ParsedTextSceneGraph
from ..training import (
    FinstaExampleDataset,
    finsta_synth_examples,
    finsta_synth_hard_negatives,
    finsta_synth_tokenizer,
    tiny_clip_config,
    with_text_graphs,
)

PLAIN_HOST = dict(
    inference_mode="distilled",
    use_osc=False,
    use_ptc=False,
    graph_contrastive_loss_weight=0.0,
    distillation_loss_weight=0.0,
)
"""A plain host: only its own contrastive objective, host embeddings at inference."""

PARSER_BACKEND = "spacy"
"""The caption parser the automatic variant and the saved checkpoint use (spaCy dependency rules)."""


@dataclass(frozen=True)
class Variant:
    """One model of the comparison.

    overrides: `FinstaConfig` arguments; text_graphs: ``"gold"``, ``"parsed"``, ``"shuffled"`` or None
    (the model reads no caption graph); dsg: ``"annotated"``, ``"latent"`` or None; label: the table's name.
    """

    overrides: dict[str, Any]
    text_graphs: Optional[str]
    dsg: Optional[str]
    label: str

    @property
    def plain(self) -> bool:
        return self.overrides.get("inference_mode") == "distilled" and not self.overrides.get("use_osc", True)

    @property
    def modes(self) -> tuple[str, ...]:
        return ("distilled",) if self.plain else ("fused", "distilled")


VARIANTS: dict[str, Variant] = {
    "meanP": Variant(dict(temporal_head="meanP", **PLAIN_HOST), None, None, "CLIP4Clip meanP"),
    "seqTransf": Variant(dict(temporal_head="seqTransf", **PLAIN_HOST), None, None, "CLIP4Clip seqTransf"),
    "capacity_control": Variant(
        dict(temporal_head="meanP", inference_mode="fused", use_scene_graph_structure=False, use_osc=False),
        None, None, "capacity control (same head and losses, no scene graph)",
    ),  # fmt: skip
    "finsta_gold_annotated": Variant(
        dict(temporal_head="meanP", inference_mode="fused"), "gold", "annotated", "Finsta: gold TSG + annotated DSG"
    ),
    "finsta_gold_latent": Variant(
        dict(temporal_head="meanP", inference_mode="fused"), "gold", "latent", "Finsta: gold TSG + latent DSG"
    ),
    "finsta_auto": Variant(
        dict(temporal_head="meanP", inference_mode="fused"), "parsed", "latent", "Finsta fully automatic (parsed TSG + latent DSG)"
    ),
    "shuffled_graph": Variant(
        dict(temporal_head="meanP", inference_mode="fused"), "shuffled", "latent", "shuffled-graph control (TSG edges permuted)"
    ),
}
"""name -> `Variant`; the order of the table."""

DEMO_VARIANTS = ("meanP", "seqTransf", "capacity_control", "finsta_gold_annotated", "finsta_auto")
"""What plain ``finsta-demo`` trains; ``--benchmark`` trains all of `VARIANTS`."""

SAVED_VARIANT = "finsta_auto"
"""The checkpoint the demo keeps: trained exactly as its saved processor prepares captions (parsed), so a
caption string gets the embedding the model was trained with."""


def finsta_head_settings(width: int = 64) -> dict[str, Any]:
    return dict(
        graph_hidden_size=width, graph_num_heads=4, text_graph_num_layers=2, video_graph_num_layers=2,
        num_latent_slots=4, temporal_num_layers=2, num_frame_positions=16,
    )  # fmt: skip


def shuffled_text_graph(graph: ParsedTextSceneGraph) -> ParsedTextSceneGraph:
    """[control] The same nodes with the edges' endpoints permuted (a permutation fixed by the caption).

    Nodes, words and edge kinds are kept, so the text branch sees the same material without its
    structure: which attribute belongs to which object and who does what to whom are scrambled.
    """
    rng = random.Random(zlib.crc32(graph.caption.encode("utf-8")))
    order = list(range(len(graph.nodes)))
    for _ in range(10):  # avoid the identity where possible
        rng.shuffle(order)
        if len(order) < 2 or order != sorted(order):
            break
    shuffled = ParsedTextSceneGraph(caption=graph.caption, nodes=list(graph.nodes))
    for source, target, kind in graph.edges:
        shuffled.add_edge(order[source], order[target], kind)
    return shuffled


@dataclass
class DemoData:
    """Finsta-Synth with its processor, and the training examples of every text-graph / DSG source."""

    dataset: Any
    processor: FinstaProcessor
    max_length: int
    seed: int
    examples: FinstaExampleDataset  # gold TSG + gold DSG (+ grounding) + hard negatives: the annotated variant's
    _cache: dict = field(default_factory=dict)

    def training_examples(self, variant: Variant) -> FinstaExampleDataset:
        """The examples ``variant`` trains on; latent variants carry no field derived from the gold DSG."""
        key = (variant.text_graphs, variant.dsg)
        if key not in self._cache:
            examples = self.examples
            if variant.dsg != "annotated":
                examples = examples.without("video_scene_graph", "grounding")
            if variant.text_graphs in ("parsed", "shuffled"):
                samples, negatives = self.dataset.train, self._negatives
                graph = None if variant.text_graphs == "parsed" else shuffled_text_graph
                examples = FinstaExampleDataset(
                    with_text_graphs(
                        examples.examples, self.processor, [s.caption for s in samples],
                        None if graph is None else [graph(s.text_graph) for s in samples],
                        [None if n is None else n.negative for n in negatives],
                        None if graph is None else [None if n is None else graph(n.negative_graph) for n in negatives],
                    )
                )  # fmt: skip
            self._cache[key] = examples
        return self._cache[key]

    @property
    def _negatives(self) -> list:
        chosen = finsta_synth_hard_negatives(self.dataset.train, self.dataset.config, seed=self.seed)
        return [chosen.get(i) for i in range(len(self.dataset.train))]


def prepare_data(
    num_train: int,
    num_test: int,
    seed: int,
    *,
    num_compositional: int = 0,
    image_size: int = 32,
    num_frames: int = 8,
    objects_per_clip: int = 2,
) -> DemoData:
    """Finsta-Synth (with the compositional held-out split when ``num_compositional``), its tokenizer and
    processor (with the caption parser, which the saved checkpoint keeps) and the processed training examples."""
    from ..synth import COMPOSITIONAL_HELD_OUT, FinstaSynthConfig, generate_finsta_synth

    synth_config = FinstaSynthConfig(
        seed=seed, num_train=num_train, num_test=num_test, image_size=image_size, num_frames=num_frames,
        objects_per_clip=objects_per_clip, num_compositional=num_compositional,
        held_out=COMPOSITIONAL_HELD_OUT if num_compositional else (),
    )  # fmt: skip
    dataset = generate_finsta_synth(synth_config)
    tokenizer = finsta_synth_tokenizer(synth_config)
    captions = [s.caption for s in dataset.train + dataset.test + dataset.compositional]
    for suites in (dataset.hard_negatives, dataset.compositional_hard_negatives):
        captions += [n.negative for suite in suites.values() for n in suite]
    processor, max_length = synth_processor(tokenizer, captions, image_size, num_frames, PARSER_BACKEND)
    negatives = finsta_synth_hard_negatives(dataset.train, synth_config, seed=seed)
    examples = finsta_synth_examples(dataset.train, processor, hard_negatives=negatives)
    return DemoData(dataset, processor, max_length, seed, FinstaExampleDataset(examples))


def synth_processor(
    tokenizer, captions: list[str], image_size: int, num_frames: int, parser_backend: Optional[str]
) -> tuple[FinstaProcessor, int]:
    """A processor for Finsta-Synth clips whose ``max_length`` (a multiple of 8) truncates none of ``captions``."""
    longest = max(len(ids) for ids in tokenizer(captions)["input_ids"])
    max_length = 8 * ((longest + 7) // 8)
    processor = FinstaProcessor(
        tokenizer=tokenizer,
        video_preprocessing={"size": image_size, "crop_size": image_size},
        num_frames=num_frames,
        max_length=max_length,
        parser_backend=parser_backend,
    )
    return processor, max_length


def build_model(variant: Variant, data: DemoData, seed: int, **extra: Any) -> FinstaModel:
    """A freshly initialised tiny CLIP4Clip (trained from pixels) with the variant's Finsta head."""
    return new_tiny_model({**variant.overrides, **extra}, data.processor, data.max_length, seed)


def new_tiny_model(overrides: dict[str, Any], processor: FinstaProcessor, max_length: int, seed: int) -> FinstaModel:
    """The demo's tiny CLIP4Clip with the demo's Finsta head and ``overrides`` (`FinstaConfig` arguments)."""
    torch.manual_seed(seed)
    config = FinstaConfig(
        # a small CLIP trained from pixels; 4-pixel patches keep each Finsta-Synth object on 2x2 patches
        backbone_config=tiny_clip_config(
            processor.tokenizer, max_length=max_length, image_size=processor.video_preprocessor.crop_size[0]
        ),
        **{**finsta_head_settings(), **overrides},
    )
    return FinstaModel(config)


def train_model(
    name: str,
    model: FinstaModel,
    examples: FinstaExampleDataset,
    processor: FinstaProcessor,
    output_dir: Path,
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    show_progress: bool = True,
    host_frozen_steps: int = 0,
    warmup_ratio: float = 0.1,
    backbone_learning_rate: Optional[float] = None,
) -> FinstaModel:
    """Train with `modeling_finsta.training.train` (Trainer, same schedule for every model); returns the model."""
    from ..training import TrainingRecipe, TrainingSettings, train

    recipe = replace(
        TrainingRecipe(),
        training=TrainingSettings(
            max_steps=steps, per_device_batch_size=batch_size, learning_rate=learning_rate, warmup_ratio=warmup_ratio,
            save_steps=None, logging_steps=max(steps // 10, 1), seed=seed, host_frozen_steps=host_frozen_steps,
            backbone_learning_rate=backbone_learning_rate,
            trainer_arguments={"disable_tqdm": not show_progress},
        ),
    )  # fmt: skip
    print(f"\n[{name}] training {steps} steps (batch {batch_size}, lr {learning_rate:g})", flush=True)
    return train(recipe, output_dir / name, train_dataset=examples, model=model, processor=processor).model


def evaluate(model, data: DemoData, variant: Variant, split: str = "test", show_progress: Optional[bool] = False) -> dict[str, Any]:
    """Retrieval and the hard-negative suites of ``split`` in the variant's modes, with its own graph sources."""
    from ..evaluation import evaluate_finsta_synth

    text_graphs = {"gold": "gold", "parsed": "parsed", "shuffled": shuffled_text_graph, None: "gold"}[variant.text_graphs]
    return evaluate_finsta_synth(
        model,
        data.processor,
        data.dataset,
        split=split,
        text_graphs=text_graphs,
        modes=variant.modes,
        dsg_sources=("annotated",) if variant.dsg == "annotated" else ("latent",),
        measure_latent_dsg=variant.dsg == "latent",
        show_progress=show_progress,
    )


__all__ = [
    "DEMO_VARIANTS",
    "PARSER_BACKEND",
    "PLAIN_HOST",
    "SAVED_VARIANT",
    "VARIANTS",
    "DemoData",
    "Variant",
    "build_model",
    "evaluate",
    "finsta_head_settings",
    "new_tiny_model",
    "prepare_data",
    "shuffled_text_graph",
    "synth_processor",
    "train_model",
]
