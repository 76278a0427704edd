"""Finsta-Synth export in the MSR-VTT layout (mp4 videos, CSV splits, JSON captions) plus the Finsta files
(gold video scene graphs, text scene graphs, hard-negative suites)."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from ..scene_graphs import ParsedTextSceneGraph
from ..video_scene_graph_io import write_video_scene_graph
from .hard_negatives import HARD_NEGATIVE_SUITES
from .samples import FinstaSynthDataset


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
