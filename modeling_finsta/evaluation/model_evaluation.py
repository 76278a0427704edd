"""Everything at once: ``evaluate_model`` (every mode and DSG source from one pass over the videos),
``evaluate_finsta_synth``, the results table, and the dataset folder's ``text_scene_graphs.jsonl`` reader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch

from ..readers.text_files import DataFileError, check_text, read_jsonl
from ..scene_graphs import ParsedTextSceneGraph
from .dsg_quality import SlotLocalisationCounts, update_localisation
from .encoding import (
    DSG_SOURCES,
    INFERENCE_MODES,
    check_dsg,
    check_mode,
    encode_captions,
    encode_captions_or_examples,
    encode_video_batch,
    evaluation_settings,
    model_device,
    num_batches,
    progress,
    require_annotated,
    video_batches,
)
from .hard_negatives import HardNegativeItem, normalise_suites, suite_accuracies, suite_captions
from .metrics import retrieval_metrics
from .retrieval import similarity_matrix


# ----------------------------------------------------------------------------------------------
# Everything at once
# ----------------------------------------------------------------------------------------------


def _video_settings(modes: Sequence[str], dsg_sources: Sequence[str]) -> list[tuple[str, str]]:
    """Distinct (mode, dsg) encodings to compute: distilled mode reads no DSG, so it is encoded once."""
    settings = []
    for mode in modes:
        for dsg in dsg_sources:
            setting = (mode, "latent") if mode == "distilled" else (mode, dsg)
            if setting not in settings:
                settings.append(setting)
    return settings


def evaluate_model(
    model,
    processor,
    captions: Sequence[Any],
    videos: Sequence[Any],
    caption_to_video: Optional[Sequence[int]] = None,
    *,
    text_scene_graphs: Optional[Sequence[Optional[ParsedTextSceneGraph]]] = None,
    video_scene_graphs: Optional[Sequence[Any]] = None,
    hard_negatives: Optional[Mapping[str, Sequence[Any]]] = None,
    modes: Sequence[str] = INFERENCE_MODES,
    dsg_sources: Sequence[str] = DSG_SOURCES,
    measure_latent_dsg: bool = True,
    batch_size: int = 64,
    video_to_text: str = "captions",
    show_progress: Optional[bool] = None,
) -> dict[str, Any]:
    """Retrieval metrics and hard-negative accuracies for every mode and DSG source, plus latent-DSG quality.

    Videos are decoded once: every (mode, DSG source) embedding and the latent-DSG measurement are
    computed from the same batch. Text embeddings depend only on the mode.

    Args:
        captions: raw caption strings, or processed examples with ``input_ids`` (one per caption).
        videos: raw videos (paths, arrays, ...) decoded through ``processor``, or processed examples
            with ``pixel_values`` (one per video).
        caption_to_video: video index of every caption; default: caption i describes video i.
        text_scene_graphs: gold TSG per raw caption (None entries are parsed by the processor).
        video_scene_graphs: annotated DSG per raw video (``ParsedVideoSceneGraph``, JSON path or None).
        hard_negatives: ``{suite: items}`` (see ``evaluate_hard_negatives``); indices refer to ``videos``.
        modes, dsg_sources: subsets of ``INFERENCE_MODES`` and ``DSG_SOURCES``. ``"annotated"`` needs
            a DSG for every video.
        measure_latent_dsg: add ``latent_dsg_quality`` against the annotated DSGs when there are any.

    Returns:
        ``{mode: {dsg: {"t2v_R@1", ..., "v2t_MnR", "<suite>_acc", ...}}}`` for every requested mode and
        DSG source (distilled entries are identical across DSG sources), plus ``"num_captions"``,
        ``"num_videos"`` and, when measured, ``"latent_dsg_quality"``
        (``{"centroid_in_box", "track_consistency", "gold_objects", "track_pairs"}``).
    """
    modes, dsg_sources = list(modes), list(dsg_sources)
    if not modes or not dsg_sources:
        raise ValueError("evaluate_model needs at least one mode and one DSG source")
    for mode in modes:
        check_mode(mode)
    for dsg in dsg_sources:
        check_dsg(dsg)
    if len(videos) == 0 or len(captions) == 0:
        raise ValueError("evaluate_model needs at least one caption and one video")
    if caption_to_video is None:
        caption_to_video = list(range(len(captions)))
    if len(caption_to_video) != len(captions):
        raise ValueError(f"caption_to_video has {len(caption_to_video)} entries for {len(captions)} captions")
    if video_scene_graphs is not None and len(video_scene_graphs) != len(videos):
        raise ValueError(f"got {len(video_scene_graphs)} video_scene_graphs for {len(videos)} videos")
    if text_scene_graphs is not None and len(text_scene_graphs) != len(captions):
        raise ValueError(f"got {len(text_scene_graphs)} text_scene_graphs for {len(captions)} captions")
    settings = _video_settings(modes, dsg_sources)
    if any(dsg == "annotated" for _, dsg in settings):
        require_annotated(videos, video_scene_graphs)
    suites = None if hard_negatives is None else normalise_suites(hard_negatives, len(videos))
    device = model_device(model)

    # One pass over the videos for every setting (and the latent-DSG measurement).
    video_embeds: dict[tuple[str, str], list[torch.Tensor]] = {setting: [] for setting in settings}
    counts = SlotLocalisationCounts()
    batches = video_batches(videos, processor, video_scene_graphs, batch_size)
    total = num_batches(len(videos), batch_size)
    for batch in progress(batches, total, "encoding videos", show_progress):
        for mode, dsg in settings:
            with evaluation_settings(model, mode):
                video_embeds[(mode, dsg)].append(encode_video_batch(model, batch, device, dsg))
        if measure_latent_dsg and batch.get("video_scene_graph") is not None and hasattr(model, "graph_encoder"):
            with evaluation_settings(model):
                update_localisation(model, counts, batch, batch["video_scene_graph"], device)
    stacked = {setting: torch.cat(parts) for setting, parts in video_embeds.items()}

    results: dict[str, Any] = {"num_captions": len(captions), "num_videos": len(videos)}
    targets = [int(v) for v in caption_to_video]
    suite_texts, suite_graphs = suite_captions(suites) if suites else ([], [])
    for mode in modes:
        text_embeds = encode_captions_or_examples(model, processor, captions, text_scene_graphs, batch_size, mode, show_progress)
        suite_embeds = None
        if suite_texts:
            suite_embeds = encode_captions(model, processor, suite_texts, suite_graphs, batch_size, mode=mode, show_progress=show_progress)
        results[mode] = {}
        for dsg in dsg_sources:
            setting = (mode, "latent") if mode == "distilled" else (mode, dsg)
            metrics: dict[str, Any] = retrieval_metrics(
                similarity_matrix(text_embeds, stacked[setting]), targets, video_to_text=video_to_text
            )
            if suites is not None:
                if suite_embeds is None:
                    accuracies = {suite: None for suite in suites}
                else:
                    accuracies = suite_accuracies(
                        stacked[setting], {c: i for i, c in enumerate(suite_texts)}, suite_embeds, suites
                    )
                metrics.update({f"{suite}_acc": value for suite, value in accuracies.items()})
            results[mode][dsg] = metrics
    if measure_latent_dsg and counts.gold_objects:
        results["latent_dsg_quality"] = counts.result()
    return results


def synth_suite_items(
    suites: Mapping[str, Sequence[Any]], graph: Optional[Callable[[ParsedTextSceneGraph], ParsedTextSceneGraph]] = lambda g: g
) -> dict[str, list[HardNegativeItem]]:
    """A Finsta-Synth split's hard-negative suites as ``HardNegativeItem`` lists, caption graphs through
    ``graph`` (None: no graphs, so the processor parses the captions)."""
    return {
        name: [
            HardNegativeItem(
                n.video_index, n.caption, n.negative,
                None if graph is None else graph(n.caption_graph), None if graph is None else graph(n.negative_graph),
            )  # fmt: skip
            for n in suite
        ]
        for name, suite in suites.items()
    }


def evaluate_finsta_synth(
    model,
    processor,
    dataset,
    *,
    split: str = "test",
    text_graphs: Union[str, Callable[[ParsedTextSceneGraph], ParsedTextSceneGraph]] = "gold",
    **kwargs: Any,
) -> dict[str, Any]:
    """``evaluate_model`` on a ``FinstaSynthDataset`` split with its gold DSGs and all its suites.

    Args:
        split: ``"test"`` (in-distribution) or ``"compositional"`` (the held-out combinations).
        text_graphs: where caption graphs come from: ``"gold"`` (the dataset's), ``"parsed"`` (the
            processor's parser, as for any real caption), or a function of the gold graph (e.g. a control
            that shuffles its edges).
    """
    samples, suites = dataset.split(split)
    if not samples:
        raise ValueError(f"the dataset has no {split} clips")
    if text_graphs == "parsed":
        graph = None
    elif text_graphs == "gold":
        graph = lambda g: g  # noqa: E731
    elif callable(text_graphs):
        graph = text_graphs
    else:
        raise ValueError(f"text_graphs must be 'gold', 'parsed' or a function, got {text_graphs!r}")
    items = synth_suite_items(suites, graph)
    return evaluate_model(
        model,
        processor,
        [sample.caption for sample in samples],
        [sample.frames for sample in samples],
        text_scene_graphs=None if graph is None else [graph(sample.text_graph) for sample in samples],
        video_scene_graphs=[sample.video_graph for sample in samples],
        hard_negatives=kwargs.pop("hard_negatives", items),
        **kwargs,
    )


# ----------------------------------------------------------------------------------------------
# Reporting
# ----------------------------------------------------------------------------------------------

TABLE_METRICS = ("t2v_R@1", "t2v_R@5", "t2v_R@10", "t2v_MdR", "t2v_MnR", "v2t_R@1", "v2t_R@5", "v2t_R@10", "v2t_MdR", "v2t_MnR")


def _format_value(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def format_results_table(results: Mapping[str, Any]) -> str:
    """A plain-text table of ``evaluate_model`` results: one row per mode and DSG source."""
    rows = [(mode, dsg, metrics) for mode in INFERENCE_MODES if mode in results for dsg, metrics in results[mode].items()]
    if not rows:
        return "(no results)"
    suite_columns = [key for key in rows[0][2] if key.endswith("_acc")]
    header = ["mode", "dsg", *TABLE_METRICS, *suite_columns]
    body = [
        [mode, dsg if mode == "fused" else f"{dsg} (host only)", *(_format_value(m.get(k)) for k in (*TABLE_METRICS, *suite_columns))]
        for mode, dsg, m in rows
    ]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(str(cell).rjust(width) for cell, width in zip(line, widths)) for line in [header, *body]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    quality = results.get("latent_dsg_quality")
    if quality:
        lines.append(
            f"latent DSG: {_format_value(quality['centroid_in_box'])}% of {quality['gold_objects']} gold objects have a slot "
            f"centroid in their box; track consistency {_format_value(quality['track_consistency'])}% "
            f"over {quality['track_pairs']} frame pairs"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Dataset-folder helpers
# ----------------------------------------------------------------------------------------------

TEXT_SCENE_GRAPHS_FILE = "text_scene_graphs.jsonl"


def read_text_scene_graphs(path: Union[str, Path]) -> dict[str, ParsedTextSceneGraph]:
    """``{caption: graph}`` from a ``text_scene_graphs.jsonl`` (lines ``{"caption", "graph"}``, as finsta-synth exports)."""
    path = Path(path)
    graphs: dict[str, ParsedTextSceneGraph] = {}
    for number, record in read_jsonl(path, "text scene graphs"):
        try:
            graphs[check_text(record["caption"], f"{path}: line {number}: caption")] = ParsedTextSceneGraph.from_dict(record["graph"])
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, DataFileError):
                raise
            raise DataFileError(f"{path}: line {number}: expected {{'caption': str, 'graph': {{...}}}} ({error!r})") from None
    return graphs
