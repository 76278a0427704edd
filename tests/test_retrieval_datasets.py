import json
import pickle

import pytest

from modeling_finsta.readers import (
    RetrievalDatasetError,
    RetrievalSplit,
    load_retrieval_split,
    read_didemo,
    read_msrvtt,
    read_msvd,
)


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


# ---------------------------------------------------------------------------------------------
# MSR-VTT (CLIP4Clip's msrvtt_data files)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def msrvtt_root(tmp_path):
    root = tmp_path / "msrvtt"
    root.mkdir()
    videos = [
        {
            "video_id": f"video{i}",
            "category": 9,
            "url": "u",
            "start time": 1.0,
            "end time": 2.0,
            "split": "train" if i < 3 else "test",
            "id": i,
        }
        for i in range(5)
    ]
    sentences = [
        {"caption": "a car is shown", "video_id": "video0", "sen_id": 0},
        {"caption": "a girl sings", "video_id": "video1", "sen_id": 1},
        {"caption": " a red car drives ", "video_id": "video0", "sen_id": 2},
        {"caption": "a dog runs", "video_id": "video2", "sen_id": 3},
        {"caption": "a man cooks", "video_id": "video3", "sen_id": 4},
        {"caption": "people dance", "video_id": "video4", "sen_id": 5},
    ]
    (root / "MSRVTT_data.json").write_text(json.dumps({"info": {}, "videos": videos, "sentences": sentences}))
    (root / "MSRVTT_train.9k.csv").write_text("video_id\nvideo2\nvideo0\nvideo1\n")
    (root / "MSRVTT_train.7k.csv").write_text("video_id\nvideo0\n")
    (root / "MSRVTT_JSFUSION_test.csv").write_text(
        ",key,vid_key,video_id,sentence\n"
        "0,ret0,msr4,video4,a girl wearing red top is putting a sweater on a dog\n"
        '1,ret1,msr3,video3,"a man, in a kitchen, cooks"\n'
    )
    for i in (0, 1, 2, 4):
        touch(root / "videos" / "all" / f"video{i}.mp4")
    touch(root / "videos" / "all" / "video3.webm")
    touch(root / "videos" / "all" / "video4.avi")  # mp4 is preferred
    return root


def test_msrvtt_test_split(msrvtt_root):
    split = read_msrvtt(msrvtt_root, "test")
    assert split.video_ids == ["video4", "video3"]
    assert split.videos[0][1] == msrvtt_root / "videos" / "all" / "video4.mp4"
    assert split.videos[1][1] == msrvtt_root / "videos" / "all" / "video3.webm"
    assert split.captions == [
        ("a girl wearing red top is putting a sweater on a dog", 0),
        ("a man, in a kitchen, cooks", 1),
    ]
    assert split.caption_to_video == [0, 1]
    assert split.scene_graph_paths is None


def test_msrvtt_train_split_expands_all_sentences(msrvtt_root):
    split = read_msrvtt(msrvtt_root, "train")
    assert split.video_ids == ["video2", "video0", "video1"]
    assert split.captions == [("a dog runs", 0), ("a car is shown", 1), ("a red car drives", 1), ("a girl sings", 2)]
    assert split.captions_of(1) == ["a car is shown", "a red car drives"]
    assert read_msrvtt(msrvtt_root, "train-7k").video_ids == ["video0"]
    assert load_retrieval_split("MSR-VTT", msrvtt_root, "train-9k").captions == split.captions


def test_msrvtt_scene_graphs_folder(msrvtt_root):
    touch(msrvtt_root / "scene_graphs" / "video3.json")
    split = read_msrvtt(msrvtt_root, "test")
    assert split.scene_graph_paths == [None, msrvtt_root / "scene_graphs" / "video3.json"]


def test_msrvtt_missing_videos(msrvtt_root):
    (msrvtt_root / "videos" / "all" / "video3.webm").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"MSR-VTT test: 1 of 2 videos not found in .*videos/all.*\['video3'\]"
    ):
        read_msrvtt(msrvtt_root, "test")
    split = read_msrvtt(msrvtt_root, "test", require_videos=False)
    assert split.videos[1] == ("video3", msrvtt_root / "videos" / "all" / "video3.mp4")
    split = read_msrvtt(msrvtt_root, "test", skip_missing_videos=True)
    assert split.video_ids == ["video4"] and split.caption_to_video == [0]


def test_msrvtt_errors(msrvtt_root):
    with pytest.raises(ValueError, match=r"unknown MSR-VTT split 'val'"):
        read_msrvtt(msrvtt_root, "val")
    (msrvtt_root / "MSRVTT_train.9k.csv").write_text("video_id\nvideo0\nvideo9\n")
    with pytest.raises(
        RetrievalDatasetError,
        match=r"MSRVTT_data\.json: no sentences for 1 videos of MSRVTT_train\.9k\.csv, e\.g\. \['video9'\]",
    ):
        read_msrvtt(msrvtt_root, "train")
    (msrvtt_root / "MSRVTT_train.9k.csv").write_text("video_id\nvideo0\nvideo0\n")
    with pytest.raises(RetrievalDatasetError, match=r"video id 'video0' is listed twice"):
        read_msrvtt(msrvtt_root, "train")
    (msrvtt_root / "MSRVTT_JSFUSION_test.csv").write_text(",key,vid_key,video_id\n0,ret0,msr4,video4\n")
    with pytest.raises(RetrievalDatasetError, match=r"missing column\(s\) \['sentence'\]"):
        read_msrvtt(msrvtt_root, "test")
    (msrvtt_root / "MSRVTT_data.json").unlink()
    (msrvtt_root / "MSRVTT_train.9k.csv").write_text("video_id\nvideo0\n")
    with pytest.raises(FileNotFoundError, match=r"MSRVTT_data\.json: file not found \(MSR-VTT captions\)"):
        read_msrvtt(msrvtt_root, "train")


# ---------------------------------------------------------------------------------------------
# MSVD (CLIP4Clip's msvd_data: raw-captions.pkl + *_list.txt)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def msvd_root(tmp_path):
    root = tmp_path / "msvd"
    root.mkdir()
    captions = {
        "-4wsuPCjDBc_5_15": [["a", "squirrel", "is", "eating"], ["a", "squirrel", "eats", "a", "nut"]],
        "zv2RIbUsnSw_159_168": [["a", "man", "plays", "guitar"]],
        "aaa_1_2": [["unused"]],
    }
    (root / "raw-captions.pkl").write_bytes(pickle.dumps(captions))
    (root / "train_list.txt").write_text("aaa_1_2\n")
    (root / "test_list.txt").write_text("zv2RIbUsnSw_159_168\n-4wsuPCjDBc_5_15\n\n")
    touch(root / "YouTubeClips" / "zv2RIbUsnSw_159_168.avi")
    touch(root / "YouTubeClips" / "sub" / "-4wsuPCjDBc_5_15.avi")
    return root


def test_msvd_test_split(msvd_root):
    split = read_msvd(msvd_root, "test")
    assert split.video_ids == ["zv2RIbUsnSw_159_168", "-4wsuPCjDBc_5_15"]
    assert split.videos[1][1] == msvd_root / "YouTubeClips" / "sub" / "-4wsuPCjDBc_5_15.avi"
    assert split.captions == [
        ("a man plays guitar", 0),
        ("a squirrel is eating", 1),
        ("a squirrel eats a nut", 1),
    ]
    assert isinstance(split, RetrievalSplit)


def test_msvd_errors(msvd_root):
    with pytest.raises(FileNotFoundError, match=r"val_list\.txt: file not found \(MSVD val split\)"):
        read_msvd(msvd_root, "val")
    (msvd_root / "val_list.txt").write_text("missing_0_1\n")
    with pytest.raises(
        RetrievalDatasetError, match=r"raw-captions\.pkl: no captions for video 'missing_0_1' listed in val_list\.txt"
    ):
        read_msvd(msvd_root, "val")
    (msvd_root / "raw-captions.pkl").write_bytes(pickle.dumps({"aaa_1_2": [["ok"], [1, 2]]}))
    with pytest.raises(RetrievalDatasetError, match=r"\['aaa_1_2'\]\[1\]: expected a list of token strings"):
        read_msvd(msvd_root, "train", require_videos=False)


# ---------------------------------------------------------------------------------------------
# DiDeMo (CLIP4Clip's format: *_list.txt + *_data.json, paragraph retrieval)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def didemo_root(tmp_path):
    root = tmp_path / "didemo"
    root.mkdir()
    entries = [
        {
            "video": "111@N00_222_abc.mov",
            "description": "a dog jumps.",
            "times": [[0, 0], [0, 1]],
            "annotation_id": 1,
            "dl_link": "x",
            "train_times": [[0, 0]],
            "context": [0, 0],
        },
        {"video": "333@N00_444_def.mp4", "description": "the camera pans left", "times": [[2, 3]]},
        {"video": "111@N00_222_abc.mov", "description": "the dog lands", "times": [[1, 1]]},
        {"video": "999@N00_000_zzz.mov", "description": "not in the list", "times": [[1, 1]]},
    ]
    (root / "test_data.json").write_text(json.dumps(entries))
    (root / "test_list.txt").write_text("333@N00_444_def.mp4\n111@N00_222_abc.mov\n555@N00_666_ghi.mov\n")
    touch(root / "videos" / "111@N00_222_abc.mp4")  # converted copy of the .mov
    touch(root / "videos" / "333@N00_444_def.mp4")
    return root


def test_didemo_paragraphs(didemo_root):
    split = read_didemo(didemo_root, "test")
    # Order of first description; the listed video without descriptions is left out.
    assert split.video_ids == ["111@N00_222_abc.mov", "333@N00_444_def.mp4"]
    assert split.videos[0][1] == didemo_root / "videos" / "111@N00_222_abc.mp4"
    assert split.captions == [("a dog jumps. the dog lands", 0), ("the camera pans left", 1)]
    touch(didemo_root / "scene_graphs" / "111@N00_222_abc.json")
    assert read_didemo(didemo_root, "test").scene_graph_paths == [
        didemo_root / "scene_graphs" / "111@N00_222_abc.json",
        None,
    ]


def test_didemo_errors(didemo_root):
    (didemo_root / "test_data.json").write_text(json.dumps([{"video": "333@N00_444_def.mp4", "times": []}]))
    with pytest.raises(RetrievalDatasetError, match=r"test_data\.json: \[0\]: missing field 'description'"):
        read_didemo(didemo_root, "test")
    (didemo_root / "test_data.json").write_text(json.dumps({"video": "x"}))
    with pytest.raises(RetrievalDatasetError, match=r"expected a list of moment annotations"):
        read_didemo(didemo_root, "test")
    with pytest.raises(ValueError, match=r"unknown retrieval dataset 'kinetics'"):
        load_retrieval_split("kinetics", didemo_root)


def test_split_validates_indices():
    with pytest.raises(RetrievalDatasetError, match=r"captions\[0\] points to video 1, but the split has 1 videos"):
        RetrievalSplit(videos=[("v", None)], captions=[("c", 1)])


def test_text_file_errors_name_the_file_and_line(tmp_path):
    from modeling_finsta.readers.text_files import DataFileError, check_text, read_csv_rows, read_jsonl

    csv_path = tmp_path / "split.csv"
    csv_path.write_bytes(b"video_id,sentence\nvideo0,a man runs\nvideo1,caf\xe9 scene\n")
    with pytest.raises(DataFileError, match=r"split\.csv: line 3, column 11: byte 0xe9 is not valid UTF-8"):
        read_csv_rows(csv_path, "split", ("video_id",))
    csv_path.write_text("video_id,sentence\nvideo0,a man runs,extra\n")
    with pytest.raises(DataFileError, match=r"split\.csv: line 2: more fields than the header"):
        read_csv_rows(csv_path, "split", ("video_id",))
    jsonl = tmp_path / "suite.jsonl"
    jsonl.write_text('{"a": 1}\n\n{not json}\n')
    with pytest.raises(DataFileError, match=r"suite\.jsonl: line 3: invalid JSON"):
        list(read_jsonl(jsonl))
    with pytest.raises(DataFileError, match=r"somewhere: character '\\udcff'"):
        check_text("a man\udcff runs", "somewhere")
    assert check_text("café", "x") == "café"


def test_msrvtt_caption_with_a_lone_surrogate_names_the_file_and_line(msrvtt_root):
    (msrvtt_root / "MSRVTT_JSFUSION_test.csv").write_text(
        "key,vid_key,video_id,sentence\nret0,msr0,video0,a dog \\udcff runs\n".replace("\\udcff", "\udcff"),
        encoding="utf-8",
        errors="surrogatepass",
    )
    with pytest.raises(RetrievalDatasetError, match=r"MSRVTT_JSFUSION_test\.csv: line 2, column \d+: byte 0xed"):
        read_msrvtt(msrvtt_root, "test")
    (msrvtt_root / "MSRVTT_data.json").write_text(
        '{"sentences": [{"video_id": "video0", "caption": "a dog \\udcff runs"}], "videos": []}', encoding="utf-8"
    )
    (msrvtt_root / "MSRVTT_train.9k.csv").write_text("video_id\nvideo0\n")
    with pytest.raises(RetrievalDatasetError, match=r"MSRVTT_data\.json.*cannot be encoded"):
        read_msrvtt(msrvtt_root, "train")
