"""Video loading (PyAV), frame sampling and pixel preprocessing for Finsta's video backbones.

Three independent pieces:

* ``compute_frame_indices``: which frames to keep, from ``(total_frames, native_fps)`` only. Two
  sampling modes used by video-language work:

  - ``"uniform"`` (X-CLIP, VideoMAE, most retrieval models): split the video into ``num_frames``
    equal segments and take the centre frame of each.
  - ``"fps"`` (CLIP4Clip): take one frame every ``1 / fps`` seconds; when that yields more than
    ``max_frames`` frames, keep the first (``"head"``), last (``"tail"``) or an evenly spaced
    subset (``"uniform"``) of them.

* ``load_video``: decodes a file / bytes / file object with PyAV and keeps only the selected frames
  (frames that are not kept are never converted to RGB, long gaps are skipped by seeking), or
  samples an in-memory video (numpy array or list of PIL images) the same way.

* ``VideoPreprocessor``: resize shortest side (PIL), centre crop, rescale, normalise, and batch
  videos of different lengths into ``pixel_values [B, T, C, H, W]`` plus ``video_mask [B, T]``.
  It needs neither torchvision nor a transformers image processor, and its config is plain JSON.

PyAV is imported lazily so that importing this module only needs numpy, torch and pillow.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from transformers.utils import logging


logger = logging.get_logger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)

SAMPLING_MODES = ("uniform", "fps")
SLICE_MODES = ("head", "tail", "uniform")

VideoSource = Union[str, os.PathLike, bytes, bytearray, memoryview, io.IOBase, np.ndarray, Sequence[Any]]


class VideoDecodingError(ValueError):
    """A video could not be read: missing, corrupt, without a video stream, or without frames."""


@dataclass
class VideoInfo:
    """What ``load_video`` knows about the source and which frames it returned.

    ``frame_indices[i]`` is the index (in decoding order, 0-based) of returned frame ``i`` in the
    source; ``timestamps`` are their presentation times in seconds when the container gives them.
    """

    source: str
    total_frames: int
    native_fps: Optional[float]
    height: int
    width: int
    sampling: str
    frame_indices: list[int] = field(default_factory=list)
    timestamps: Optional[list[Optional[float]]] = None

    @property
    def duration(self) -> Optional[float]:
        """Length of the source in seconds (``total_frames / native_fps``), if the rate is known."""
        if not self.native_fps:
            return None
        return self.total_frames / self.native_fps

    def to_dict(self) -> dict[str, Any]:
        output = asdict(self)
        output["duration"] = self.duration
        return output


# --------------------------------------------------------------------------------------------
# Frame index selection
# --------------------------------------------------------------------------------------------


def _check_positive_int(name: str, value: Optional[int]) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer or None, got {value!r}.")


def _frame_window(
    total_frames: int, native_fps: Optional[float], start_time: Optional[float], end_time: Optional[float]
) -> tuple[int, int]:
    """Turns an optional ``[start_time, end_time)`` window in seconds into a frame range."""
    if start_time is None and end_time is None:
        return 0, total_frames
    if not native_fps:
        raise ValueError("`start_time`/`end_time` need the video's frame rate, which is unknown; pass `native_fps`.")
    start_frame = 0
    end_frame = total_frames
    if start_time is not None:
        if start_time < 0:
            raise ValueError(f"`start_time` must be >= 0, got {start_time}.")
        start_frame = int(math.floor(start_time * native_fps + 1e-6))
    if end_time is not None:
        end_frame = min(total_frames, int(math.ceil(end_time * native_fps - 1e-6)))
    if start_frame >= end_frame:
        duration = total_frames / native_fps
        raise ValueError(
            f"The window start_time={start_time}, end_time={end_time} selects no frame of a video of "
            f"{total_frames} frames ({duration:.3f} s at {native_fps:.3f} fps)."
        )
    return start_frame, end_frame


def _uniform_positions(length: int, count: int) -> list[int]:
    """Centre of each of ``count`` equal segments of ``range(length)``; repeats when ``count > length``."""
    return [min(length - 1, int(math.floor((i + 0.5) * length / count))) for i in range(count)]


def _slice_positions(length: int, count: int, slice_mode: str) -> list[int]:
    """Keeps ``count`` of ``length`` ordered items as CLIP4Clip does (head, tail or evenly spaced)."""
    if length <= count:
        return list(range(length))
    if slice_mode == "head":
        return list(range(count))
    if slice_mode == "tail":
        return list(range(length - count, length))
    if count == 1:
        return [0]
    # evenly spaced from the first to the last item, both included
    return [int(round(i * (length - 1) / (count - 1))) for i in range(count)]


def compute_frame_indices(
    total_frames: int,
    native_fps: Optional[float] = None,
    *,
    sampling: str = "uniform",
    num_frames: Optional[int] = None,
    fps: Optional[float] = None,
    max_frames: Optional[int] = None,
    slice_mode: str = "uniform",
    start_time: Optional[float] = None,
    end_time: Optional[float] = None,
) -> list[int]:
    """Indices of the frames to keep from a video of ``total_frames`` frames at ``native_fps``.

    Args:
        total_frames: number of frames in the video (>= 1).
        native_fps: frame rate of the video; needed by ``sampling="fps"`` and by a time window.
        sampling: ``"uniform"``: ``num_frames`` frames, the centre of each of ``num_frames`` equal
            segments (frames repeat when the video is shorter than ``num_frames``, so exactly
            ``num_frames`` indices come back); every frame when ``num_frames`` is None.
            ``"fps"``: one frame every ``1 / fps`` seconds, starting at the first frame.
        num_frames: frame count for ``"uniform"`` (not accepted by ``"fps"``: use ``max_frames``).
        fps: sampling rate for ``"fps"`` (default 1 frame per second).
        max_frames: upper bound on the number of indices, in both modes. In ``"fps"`` mode the
            surplus is removed according to ``slice_mode``; in ``"uniform"`` mode it caps
            ``num_frames``.
        slice_mode: ``"head"``, ``"tail"`` or ``"uniform"`` (evenly spaced, first and last kept).
        start_time, end_time: optional window in seconds; sampling happens inside it only.

    Returns:
        Sorted (non-decreasing) frame indices in ``[0, total_frames)``.
    """
    if isinstance(total_frames, bool) or not isinstance(total_frames, (int, np.integer)) or total_frames < 1:
        raise ValueError(f"`total_frames` must be a positive integer, got {total_frames!r}.")
    if sampling not in SAMPLING_MODES:
        raise ValueError(f"`sampling` must be one of {SAMPLING_MODES}, got {sampling!r}.")
    if slice_mode not in SLICE_MODES:
        raise ValueError(f"`slice_mode` must be one of {SLICE_MODES}, got {slice_mode!r}.")
    _check_positive_int("num_frames", num_frames)
    _check_positive_int("max_frames", max_frames)
    if native_fps is not None and not native_fps > 0:
        raise ValueError(f"`native_fps` must be > 0 or None, got {native_fps!r}.")

    start_frame, end_frame = _frame_window(int(total_frames), native_fps, start_time, end_time)
    window_length = end_frame - start_frame

    if sampling == "uniform":
        if fps is not None:
            raise ValueError("`fps` only applies to sampling='fps'; uniform sampling takes `num_frames`.")
        count = num_frames
        if max_frames is not None:
            count = max_frames if count is None else min(count, max_frames)
        if count is None:
            positions = list(range(window_length))
        else:
            positions = _uniform_positions(window_length, count)
        return [start_frame + position for position in positions]

    # sampling == "fps"
    if num_frames is not None:
        raise ValueError(
            "`num_frames` only applies to sampling='uniform'; with sampling='fps' the count follows from "
            "`fps` and the duration, capped by `max_frames`."
        )
    fps = 1.0 if fps is None else fps
    if not fps > 0:
        raise ValueError(f"`fps` must be > 0, got {fps!r}.")
    if not native_fps:
        raise ValueError("sampling='fps' needs the video's native frame rate, which is unknown; pass `native_fps`.")
    step = native_fps / fps  # source frames between two samples
    num_samples = max(1, int(math.ceil(window_length / step - 1e-6)))
    positions = [int(math.floor(k * step + 1e-6)) for k in range(num_samples)]
    positions = [position for position in positions if position < window_length]
    if max_frames is not None:
        positions = [positions[i] for i in _slice_positions(len(positions), max_frames, slice_mode)]
    return [start_frame + position for position in positions]


# --------------------------------------------------------------------------------------------
# Decoding with PyAV
# --------------------------------------------------------------------------------------------


def _import_av():
    try:
        import av
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("Decoding video files needs PyAV: `pip install av`.") from error
    return av


def _describe_source(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<bytes input, {len(source)} bytes>"
    name = getattr(source, "name", None)
    if isinstance(name, str):
        return name
    return f"<{type(source).__name__} input>"


def _make_opener(source: Any, description: str) -> Callable[[], Any]:
    """Returns a function that opens a fresh PyAV container on ``source`` (called once or twice)."""
    av = _import_av()

    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise VideoDecodingError(f"Video file not found: {path}")
        if os.path.isdir(path):
            raise VideoDecodingError(f"Expected a video file but got a directory: {path}")
        if os.path.getsize(path) == 0:
            raise VideoDecodingError(f"Video file is empty (0 bytes): {path}")
        target: Callable[[], Any] = lambda: path  # noqa: E731
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise VideoDecodingError(f"Cannot decode video from {description}: no data.")
        target = lambda: io.BytesIO(data)  # noqa: E731
    elif not source.seekable():  # a stream is read twice (probe, decode): buffer it
        data = source.read()
        target = lambda: io.BytesIO(data)  # noqa: E731
    else:  # seekable binary file object
        start = source.tell()

        def target():
            source.seek(start)
            return source

    def open_container():
        try:
            return av.open(target(), mode="r")
        except av.error.FFmpegError as error:
            raise VideoDecodingError(f"Cannot open video {description}: {error}") from error

    return open_container


def _video_stream(container: Any, description: str) -> Any:
    if not container.streams.video:
        kinds = sorted({stream.type for stream in container.streams}) or ["none"]
        raise VideoDecodingError(
            f"No video stream in {description} (streams found: {', '.join(kinds)}); is it an audio-only file?"
        )
    return container.streams.video[0]


def _stream_fps(stream: Any) -> Optional[Fraction]:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    return None


def _count_frames(open_container: Callable[[], Any], stream: Any, description: str) -> int:
    """Frame count from the container header, else by demuxing packets (cheap: nothing is decoded)."""
    if stream.frames and stream.frames > 0:
        return int(stream.frames)
    container = open_container()
    try:
        video = _video_stream(container, description)
        return sum(1 for packet in container.demux(video) if packet.size > 0)
    finally:
        container.close()


class _FrameCollector:
    """Decodes one video stream front to back and keeps the RGB arrays of the wanted frames only.

    Frame indices come from counting decoded frames. When the next wanted frame is more than
    ``seek_threshold`` frames ahead, the collector seeks to the keyframe before it instead of
    decoding the gap. After a seek, frame indices come from presentation timestamps at the stream's
    own frame rate; seeking is therefore switched off for good as soon as one decoded frame's
    timestamp disagrees with the frame count (variable frame rate, missing timestamps).
    """

    def __init__(self, container: Any, stream: Any, stream_rate: Optional[Fraction], seek_threshold: Optional[int]):
        self.container = container
        self.stream = stream
        self.stream.thread_type = "AUTO"
        self.stream_rate = stream_rate
        self.seek_threshold = seek_threshold
        self.seek_enabled = seek_threshold is not None and stream_rate is not None and stream.time_base is not None
        self.first_pts: Optional[int] = None
        self.frames: dict[int, np.ndarray] = {}
        self.timestamps: dict[int, Optional[float]] = {}
        self.frames_seen = 0  # index of the last decoded frame + 1
        self.reached_end = False

    def _pts_to_index(self, pts: int) -> int:
        return int(round((pts - self.first_pts) * self.stream.time_base * self.stream_rate))

    def _seek_to(self, index: int) -> None:
        seconds = Fraction(index) / self.stream_rate
        offset = self.first_pts + int(math.floor(seconds / self.stream.time_base))
        self.container.seek(offset, stream=self.stream, backward=True, any_frame=False)

    def _should_seek(self, target: int, current: int, last_seek_target: Optional[int]) -> bool:
        return (
            self.seek_enabled
            and current >= 1  # two frames have confirmed that timestamps follow the frame count
            and target != last_seek_target  # its keyframe may lie far back: seek there only once
            and target - current > self.seek_threshold
        )

    def collect(self, wanted: Sequence[int]) -> None:
        targets = sorted(set(wanted))
        position = 0  # next entry of `targets` to fill
        current = -1  # index of the last decoded frame
        just_seeked = False
        last_seek_target = None
        frames = self.container.decode(self.stream)
        while position < len(targets):
            target = targets[position]
            if self._should_seek(target, current, last_seek_target):
                self._seek_to(target)
                last_seek_target = target
                frames = self.container.decode(self.stream)
                just_seeked = True
            frame = next(frames, None)
            if frame is None:
                self.reached_end = True
                break
            if self.first_pts is None:
                self.first_pts = frame.pts
                self.seek_enabled = self.seek_enabled and frame.pts is not None
            if just_seeked:
                just_seeked = False
                index = self._pts_to_index(frame.pts) if frame.pts is not None else None
                if index is None or index > target:
                    # landed past the frame we need: start over from the beginning, without seeking
                    logger.info("Seek overshot frame %d of the video stream; decoding sequentially.", target)
                    self.seek_enabled = False
                    self.container.seek(self.first_pts, stream=self.stream, backward=True, any_frame=False)
                    frames = self.container.decode(self.stream)
                    current = -1
                    continue
                if index <= current:
                    # the keyframe before `target` lies behind us: keyframes are sparser than the
                    # threshold assumed, so only seek over longer gaps from now on
                    self.seek_threshold = max(self.seek_threshold, 2 * (target - index))
                current = index
            else:
                current += 1
                if self.seek_enabled and (frame.pts is None or self._pts_to_index(frame.pts) != current):
                    self.seek_enabled = False
            self.frames_seen = max(self.frames_seen, current + 1)
            if current == target:
                self.frames[current] = frame.to_ndarray(format="rgb24")
                self.timestamps[current] = float(frame.time) if frame.time is not None else None
                position += 1


def _collect_frames(
    open_container: Callable[[], Any], description: str, indices: Sequence[int], seek_threshold: Optional[int]
) -> _FrameCollector:
    container = open_container()
    try:
        stream = _video_stream(container, description)
        collector = _FrameCollector(container, stream, _stream_fps(stream), seek_threshold)
        collector.collect(indices)
    finally:
        container.close()
    return collector


def _decode_file(
    source: Any,
    *,
    sampling_kwargs: dict[str, Any],
    native_fps: Optional[float],
    seek_threshold: Optional[int],
) -> tuple[np.ndarray, VideoInfo]:
    av = _import_av()
    description = _describe_source(source)
    open_container = _make_opener(source, description)

    try:
        container = open_container()
        try:
            stream = _video_stream(container, description)
            stream_rate = _stream_fps(stream)
            total_frames = _count_frames(open_container, stream, description)
            if total_frames == 0:
                raise VideoDecodingError(f"Video stream of {description} has no frames.")
            if native_fps is None and stream_rate is not None:
                native_fps = float(stream_rate)
            indices = compute_frame_indices(total_frames, native_fps, **sampling_kwargs)
            collector = _FrameCollector(container, stream, stream_rate, seek_threshold)
            collector.collect(indices)
        finally:
            container.close()

        if collector.reached_end and collector.frames_seen < total_frames:
            # The header over-counted (edit lists, truncated file): re-plan with the true count.
            if collector.frames_seen == 0:
                raise VideoDecodingError(f"Video stream of {description} has no decodable frames.")
            logger.warning(
                "%s: the container reports %d frames but only %d decode; sampling from those.",
                description,
                total_frames,
                collector.frames_seen,
            )
            total_frames = collector.frames_seen
            indices = compute_frame_indices(total_frames, native_fps, **sampling_kwargs)
            if any(index not in collector.frames for index in indices):
                collector = _collect_frames(open_container, description, indices, seek_threshold=None)
    except av.error.FFmpegError as error:
        raise VideoDecodingError(f"Error while decoding {description}: {error}") from error

    missing = sorted({index for index in indices if index not in collector.frames})
    if missing:
        raise VideoDecodingError(f"Frames {missing[:5]} of {description} could not be decoded.")
    frames = np.stack([collector.frames[index] for index in indices])
    info = VideoInfo(
        source=description,
        total_frames=total_frames,
        native_fps=native_fps,
        height=int(frames.shape[1]),
        width=int(frames.shape[2]),
        sampling=sampling_kwargs["sampling"],
        frame_indices=list(indices),
        timestamps=[collector.timestamps[index] for index in indices],
    )
    return frames, info


ACCEPTED_IN_MEMORY_VIDEOS = (
    "a uint8 array or torch tensor [T, H, W, 3] or [T, 3, H, W] (float values in [0, 1] are scaled to 0..255), "
    "or a list of frames (PIL images, or [H, W, 3] / [3, H, W] arrays or tensors)"
)


def _frame_array(value: Any, what: str) -> np.ndarray:
    """One frame or a whole video as a uint8 channels-last array (torch tensors and channels-first accepted)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        value = value.float().numpy() if value.is_floating_point() else value.numpy()
    array = np.asarray(value)
    if array.ndim >= 3 and array.shape[-1] != 3 and array.shape[-3] == 3:
        array = np.moveaxis(array, -3, -1)  # [.., 3, H, W] -> [.., H, W, 3]
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating):
            if array.size and (np.nanmin(array) < 0 or np.nanmax(array) > 1):
                raise ValueError(
                    f"{what} is a float array with values outside [0, 1] (min {np.nanmin(array):.3g}, max "
                    f"{np.nanmax(array):.3g}); pass uint8 RGB, or floats in [0, 1]"
                )
            array = np.round(array * 255).astype(np.uint8)
        else:
            raise ValueError(f"{what} must be uint8 RGB (or floats in [0, 1]), got dtype {array.dtype}")
    return array


def _frames_from_memory(source: Any) -> tuple[np.ndarray, str]:
    """Validates an in-memory video (see ``ACCEPTED_IN_MEMORY_VIDEOS``) and returns ``uint8 [T, H, W, 3]``."""
    if isinstance(source, (np.ndarray, torch.Tensor)):
        description = f"<{type(source).__name__} input>"
        frames = _frame_array(source, "The video")
    else:
        description = "<list of frames input>"
        if len(source) == 0:
            raise VideoDecodingError(f"Cannot sample from {description}: the list is empty.")
        arrays = []
        for position, item in enumerate(source):
            if hasattr(item, "convert") and hasattr(item, "size"):  # PIL image
                arrays.append(np.asarray(item.convert("RGB")))
            elif isinstance(item, (np.ndarray, torch.Tensor)):
                arrays.append(_frame_array(item, f"Frame {position}"))
            else:
                raise TypeError(
                    f"Frame {position} of the video list is a {type(item).__name__}; accepted videos are {ACCEPTED_IN_MEMORY_VIDEOS}."
                )
        shapes = {array.shape for array in arrays}
        if len(shapes) > 1:
            raise ValueError(f"All frames of a video must have the same size, got shapes {sorted(shapes)}.")
        frames = np.stack(arrays)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"A video must be [T, H, W, 3] or [T, 3, H, W], got {tuple(frames.shape)}; accepted: {ACCEPTED_IN_MEMORY_VIDEOS}.")
    if frames.shape[0] == 0:
        raise VideoDecodingError(f"Cannot sample from {description}: it has no frames.")
    return frames, description


def load_video(
    source: VideoSource,
    *,
    num_frames: Optional[int] = None,
    sampling: str = "uniform",
    fps: Optional[float] = None,
    max_frames: Optional[int] = None,
    slice_mode: str = "uniform",
    start_time: Optional[float] = None,
    end_time: Optional[float] = None,
    native_fps: Optional[float] = None,
    seek_threshold: Optional[int] = 250,
) -> tuple[np.ndarray, VideoInfo]:
    """Loads a video and returns the sampled frames as ``uint8 [T, H, W, 3]`` RGB plus a ``VideoInfo``.

    Args:
        source: a path, the encoded bytes, a binary file object, or in memory a uint8 array or torch
            tensor ``[T, H, W, 3]`` / ``[T, 3, H, W]`` (floats in [0, 1] are scaled), or a list of frames
            (PIL images, arrays or tensors).
        num_frames, sampling, fps, max_frames, slice_mode, start_time, end_time: frame selection,
            see ``compute_frame_indices``.
        native_fps: frame rate to assume instead of the container's (required for ``"fps"``
            sampling of in-memory videos).
        seek_threshold: when the next frame to keep is more than this many frames ahead, seek to
            the preceding keyframe instead of decoding the gap (None: always decode sequentially).

    Only the selected frames are converted to RGB and kept, so memory stays proportional to the
    number of returned frames, not to the length of the video.

    Raises:
        VideoDecodingError: the file is missing, empty, corrupt, has no video stream or no frames.
    """
    sampling_kwargs = {
        "sampling": sampling,
        "num_frames": num_frames,
        "fps": fps,
        "max_frames": max_frames,
        "slice_mode": slice_mode,
        "start_time": start_time,
        "end_time": end_time,
    }
    _check_positive_int("seek_threshold", seek_threshold)
    if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)) or (
        hasattr(source, "read") and hasattr(source, "seek")
    ):
        return _decode_file(
            source, sampling_kwargs=sampling_kwargs, native_fps=native_fps, seek_threshold=seek_threshold
        )
    if isinstance(source, (np.ndarray, torch.Tensor, list, tuple)):
        frames, description = _frames_from_memory(source)
        indices = compute_frame_indices(frames.shape[0], native_fps, **sampling_kwargs)
        info = VideoInfo(
            source=description,
            total_frames=int(frames.shape[0]),
            native_fps=native_fps,
            height=int(frames.shape[1]),
            width=int(frames.shape[2]),
            sampling=sampling,
            frame_indices=list(indices),
            timestamps=[index / native_fps for index in indices] if native_fps else None,
        )
        return np.ascontiguousarray(frames[indices]), info
    raise TypeError(
        f"Unsupported video source of type {type(source).__name__}: expected a path, bytes, a binary file "
        f"object, or in memory {ACCEPTED_IN_MEMORY_VIDEOS}."
    )


# --------------------------------------------------------------------------------------------
# Pixel preprocessing
# --------------------------------------------------------------------------------------------

_RESAMPLE_NAMES = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}


def _resample_name(resample: Union[str, int]) -> str:
    if isinstance(resample, str) and resample.lower() in _RESAMPLE_NAMES:
        return resample.lower()
    for name, code in _RESAMPLE_NAMES.items():
        if not isinstance(resample, (str, bool)) and resample == code:
            return name  # PIL codes, as stored by transformers image processors
    raise ValueError(f"`resample` must be one of {sorted(_RESAMPLE_NAMES)} or a PIL code, got {resample!r}.")


def _as_height_width(name: str, value: Union[int, Sequence[int]]) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        height = width = int(value)
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        height, width = int(value[0]), int(value[1])
    else:
        raise ValueError(f"`{name}` must be an int or a (height, width) pair, got {value!r}.")
    if height < 1 or width < 1:
        raise ValueError(f"`{name}` must be positive, got {value!r}.")
    return height, width


class VideoPreprocessor:
    """Turns RGB frame arrays into normalised ``pixel_values [B, T, C, H, W]`` and a ``video_mask``.

    Per frame, as CLIP-style image processors do: resize the shortest side to ``size`` (PIL,
    ``resample``), centre crop to ``crop_size``, multiply by ``rescale_factor``, normalise with
    ``image_mean`` / ``image_std``. Videos shorter than ``num_frames`` are padded at the end with
    zero frames whose mask is 0. Output is always 5-D, also for a single video (X-CLIP crashes on
    4-D input).
    """

    def __init__(
        self,
        size: int = 224,
        crop_size: Union[int, Sequence[int]] = 224,
        image_mean: Sequence[float] = CLIP_MEAN,
        image_std: Sequence[float] = CLIP_STD,
        rescale_factor: float = 1 / 255,
        resample: Union[str, int] = "bicubic",
        do_resize: bool = True,
        do_center_crop: bool = True,
        do_normalize: bool = True,
    ):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"`size` (shortest side after resizing) must be a positive int, got {size!r}.")
        if len(image_mean) != 3 or len(image_std) != 3:
            raise ValueError(
                f"`image_mean` and `image_std` need 3 values (RGB), got {image_mean!r} and {image_std!r}."
            )
        if any(value <= 0 for value in image_std):
            raise ValueError(f"`image_std` values must be > 0, got {image_std!r}.")
        self.size = int(size)
        self.crop_size = _as_height_width("crop_size", crop_size)
        self.image_mean = tuple(float(value) for value in image_mean)
        self.image_std = tuple(float(value) for value in image_std)
        self.rescale_factor = float(rescale_factor)
        self.resample = _resample_name(resample)
        self.do_resize = bool(do_resize)
        self.do_center_crop = bool(do_center_crop)
        self.do_normalize = bool(do_normalize)

    # ---- config ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable config; ``VideoPreprocessor.from_dict(p.to_dict())`` rebuilds ``p``."""
        return {
            "size": self.size,
            "crop_size": list(self.crop_size),
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
            "rescale_factor": self.rescale_factor,
            "resample": self.resample,
            "do_resize": self.do_resize,
            "do_center_crop": self.do_center_crop,
            "do_normalize": self.do_normalize,
        }

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "VideoPreprocessor":
        unknown = set(config) - set(cls().to_dict())
        if unknown:
            raise ValueError(f"Unknown VideoPreprocessor config keys: {sorted(unknown)}.")
        return cls(**config)

    @classmethod
    def from_image_processor(cls, image_processor: Any) -> "VideoPreprocessor":
        """Copies size, crop, resample and statistics from a transformers image processor.

        Use this with a checkpoint's own processor (``AutoImageProcessor.from_pretrained(...)``) so
        that the statistics stored in its ``preprocessor_config.json`` win over any preset.
        """
        size = getattr(image_processor, "size", None)
        shortest_edge = size.get("shortest_edge") if hasattr(size, "get") else getattr(size, "shortest_edge", None)
        if shortest_edge is None:
            raise ValueError(
                f"{type(image_processor).__name__} does not resize by shortest edge (size={size!r}); "
                "VideoPreprocessor only supports shortest-edge resizing."
            )
        crop = getattr(image_processor, "crop_size", None)
        if hasattr(crop, "get"):
            crop_size = (crop.get("height"), crop.get("width"))
        else:
            crop_size = (getattr(crop, "height", None), getattr(crop, "width", None))
        do_center_crop = bool(getattr(image_processor, "do_center_crop", True)) and None not in crop_size
        resample = getattr(image_processor, "resample", "bicubic")
        return cls(
            size=int(shortest_edge),
            crop_size=tuple(int(value) for value in crop_size) if None not in crop_size else int(shortest_edge),
            image_mean=tuple(image_processor.image_mean),
            image_std=tuple(image_processor.image_std),
            rescale_factor=float(getattr(image_processor, "rescale_factor", 1 / 255)),
            resample=int(resample) if not isinstance(resample, str) else resample,
            do_resize=bool(getattr(image_processor, "do_resize", True)),
            do_center_crop=do_center_crop,
            do_normalize=bool(getattr(image_processor, "do_normalize", True)),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VideoPreprocessor) and self.to_dict() == other.to_dict()

    # ---- pixels -------------------------------------------------------------------------

    def _resize(self, frame: np.ndarray) -> np.ndarray:
        from PIL import Image

        height, width = frame.shape[:2]
        short, long = (height, width) if height <= width else (width, height)
        new_short, new_long = self.size, int(self.size * long / short)
        new_height, new_width = (new_short, new_long) if height <= width else (new_long, new_short)
        if (new_height, new_width) == (height, width):
            return frame
        resample = Image.Resampling(_RESAMPLE_NAMES[self.resample])
        return np.asarray(Image.fromarray(frame).resize((new_width, new_height), resample=resample))

    def _center_crop(self, frames: np.ndarray) -> np.ndarray:
        """Crops ``[T, H, W, C]`` to ``crop_size``; pads with zeros where the frame is smaller."""
        crop_height, crop_width = self.crop_size
        height, width = frames.shape[1:3]
        if height < crop_height or width < crop_width:
            pad_height, pad_width = max(crop_height - height, 0), max(crop_width - width, 0)
            pad_top, pad_left = pad_height // 2, pad_width // 2
            frames = np.pad(
                frames,
                ((0, 0), (pad_top, pad_height - pad_top), (pad_left, pad_width - pad_left), (0, 0)),
            )
            height, width = frames.shape[1:3]
        top = (height - crop_height) // 2
        left = (width - crop_width) // 2
        return frames[:, top : top + crop_height, left : left + crop_width]

    def preprocess_frames(self, frames: np.ndarray) -> np.ndarray:
        """``uint8 [T, H, W, 3]`` -> ``float32 [T, 3, crop_h, crop_w]`` (one video, no padding)."""
        frames, _ = _frames_from_memory(frames)
        if self.do_resize:
            frames = np.stack([self._resize(frame) for frame in frames])
        if self.do_center_crop:
            frames = self._center_crop(frames)
        pixels = frames.astype(np.float32) * np.float32(self.rescale_factor)
        if self.do_normalize:
            mean = np.asarray(self.image_mean, dtype=np.float32)
            std = np.asarray(self.image_std, dtype=np.float32)
            pixels = (pixels - mean) / std
        return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))

    def __call__(
        self,
        videos: Union[np.ndarray, Sequence[Union[np.ndarray, Sequence[Any]]]],
        num_frames: Optional[int] = None,
    ) -> dict[str, torch.Tensor]:
        """Preprocesses and pads a batch of videos.

        Args:
            videos: a list of videos, each a ``uint8 [T_i, H_i, W_i, 3]`` array or a list of PIL
                images; a single 4-D array is taken as a batch of one.
            num_frames: frames per video in the output (default: the longest video). Shorter videos
                are padded at the end; a longer one is an error (sample it with ``load_video``).

        Returns:
            ``{"pixel_values": FloatTensor [B, T, C, H, W], "video_mask": LongTensor [B, T]}``.
        """
        if isinstance(videos, np.ndarray):
            if videos.ndim != 4:
                raise ValueError(
                    f"A single video array must be [T, H, W, 3], got shape {tuple(videos.shape)}; "
                    "pass a list for a batch."
                )
            videos = [videos]
        if len(videos) == 0:
            raise ValueError("`videos` is empty: nothing to preprocess.")
        if any(hasattr(video, "convert") or (isinstance(video, np.ndarray) and video.ndim == 3) for video in videos):
            raise ValueError(
                "`videos` looks like the frames of one video; pass a list of videos, e.g. `[frames]`."
            )
        processed = [
            self.preprocess_frames(video if isinstance(video, np.ndarray) else _frames_from_memory(video)[0])
            for video in videos
        ]
        _check_positive_int("num_frames", num_frames)
        lengths = [video.shape[0] for video in processed]
        target_length = max(lengths) if num_frames is None else int(num_frames)
        too_long = [position for position, length in enumerate(lengths) if length > target_length]
        if too_long:
            raise ValueError(
                f"Videos {too_long} have more than num_frames={target_length} frames "
                f"({[lengths[i] for i in too_long]}); "
                "sample them first, e.g. load_video(..., num_frames=num_frames)."
            )
        shapes = {video.shape[1:] for video in processed}
        if len(shapes) > 1:
            raise ValueError(f"Preprocessed frames differ in size {sorted(shapes)}; enable center crop to batch them.")
        channels, height, width = processed[0].shape[1:]
        pixel_values = torch.zeros(len(processed), target_length, channels, height, width, dtype=torch.float32)
        video_mask = torch.zeros(len(processed), target_length, dtype=torch.long)
        for position, video in enumerate(processed):
            pixel_values[position, : video.shape[0]] = torch.from_numpy(video)
            video_mask[position, : video.shape[0]] = 1
        return {"pixel_values": pixel_values, "video_mask": video_mask}


def preprocessor_for_backbone(model_type: str, **overrides: Any) -> VideoPreprocessor:
    """A ``VideoPreprocessor`` with the statistics a backbone family was trained with.

    * ``"clip"`` (CLIP4Clip and other CLIP hosts): OpenAI CLIP mean/std, bicubic, 224.
    * ``"x_clip"`` / ``"xclip"``: ImageNet mean/std, bilinear, 224. The released X-CLIP
      checkpoints were converted with the 2022 ``VideoMAEFeatureExtractor`` defaults (ImageNet
      statistics, bilinear), which their ``preprocessor_config.json`` stores. The *class* defaults
      in current transformers differ (``VideoMAEImageProcessor``: 0.5/0.5; the auto mapping for
      ``xclip`` names ``CLIPImageProcessor``: CLIP stats), so for a real checkpoint prefer
      ``VideoPreprocessor.from_image_processor(AutoImageProcessor.from_pretrained(path))``.
    * ``"siglip"`` / ``"siglip2"``: mean = std = 0.5 per channel, bicubic. SigLIP's own image processor
      squashes a frame to a square; this preset resizes the shortest side and centre-crops instead
      (identical on square frames), which keeps objects' proportions for the scene graphs.
    * ``"videoprism"``: 288 pixels, bilinear, values in [0, 1] without normalisation (as
      ``VideoPrismProcessor``: ``do_normalize=False``).

    ``overrides`` replace any constructor argument (e.g. ``size=336, crop_size=336``).
    """
    key = model_type.lower().replace("-", "_")
    if key in ("clip", "clip_vision_model", "clip4clip"):
        defaults: dict[str, Any] = {"image_mean": CLIP_MEAN, "image_std": CLIP_STD, "resample": "bicubic"}
    elif key in ("x_clip", "xclip", "xclip_vision_model"):
        defaults = {"image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD, "resample": "bilinear"}
    elif key in ("siglip", "siglip2", "siglip_vision_model", "siglip2_vision_model"):
        defaults = {"image_mean": SIGLIP_MEAN, "image_std": SIGLIP_STD, "resample": "bicubic"}
    elif key in ("videoprism", "videoprism_vision_model"):
        defaults = {"size": 288, "crop_size": 288, "resample": "bilinear", "do_normalize": False}
    else:
        raise ValueError(
            f"No preprocessing preset for backbone model_type {model_type!r}; known: 'clip', 'x_clip', 'siglip', "
            "'siglip2', 'videoprism'."
        )
    defaults.update(overrides)
    return VideoPreprocessor(**defaults)


__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SIGLIP_MEAN",
    "SIGLIP_STD",
    "SAMPLING_MODES",
    "SLICE_MODES",
    "VideoDecodingError",
    "VideoInfo",
    "VideoPreprocessor",
    "compute_frame_indices",
    "load_video",
    "preprocessor_for_backbone",
]
