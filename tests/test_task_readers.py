"""Action-recognition and multiple-choice readers on fixture files written here, in the official
layouts (Kinetics CSV, SSv2 JSONs, UCF-101 / HMDB-51 split files, MSR-VTT-MC json / jsonl / csv), with
clear ``file:line`` errors for malformed rows."""

import json

import pytest

from modeling_finsta.readers import (
    TaskDatasetError,
    kinetics_clip_name,
    load_classification_split,
    load_multiple_choice_split,
    read_hmdb51,
    read_kinetics,
    read_msrvtt_mc,
    read_something_something_v2,
    read_ucf101,
)

KINETICS_HEADER = "label,youtube_id,time_start,time_end,split\n"


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def kinetics_root(tmp_path):
    root = tmp_path / "k400"
    write(root / "annotations" / "train.csv", KINETICS_HEADER + "riding a bike,aaa,10,20,train\nabseiling,bbb,0,10,train\n"
          "playing guitar,ccc,5,15,train\n")  # fmt: skip
    write(root / "annotations" / "validate.csv", KINETICS_HEADER + "playing guitar,xyz,7,17,validate\n"
          "abseiling,-qd_0,120,130,validate\n")  # fmt: skip
    touch(root / "validate" / "playing guitar" / "xyz_000007_000017.mp4")
    touch(root / "validate" / "abseiling" / "-qd_0_000120_000130.mp4")
    return root


def test_kinetics_reads_labels_clip_names_and_the_train_class_index(tmp_path):
    root = kinetics_root(tmp_path)
    split = read_kinetics(root, "val")
    assert split.class_names == ["abseiling", "playing guitar", "riding a bike"]  # sorted train labels
    assert split.labels == [1, 0]
    assert split.video_ids == ["xyz_000007_000017", "-qd_0_000120_000130"]
    assert split.videos[0][1] == root / "validate" / "playing guitar" / "xyz_000007_000017.mp4"
    assert kinetics_clip_name("abc", 3, 13) == "abc_000003_000013"
    write(root / "classes.txt", "riding a bike\nplaying guitar\nabseiling\n")  # an explicit index wins
    assert load_classification_split("kinetics400", root, "validate").labels == [1, 2]


@pytest.mark.parametrize(
    "row, message",
    [
        ("abseiling,zzz,ten,20,validate", ":3: time_start / time_end"),
        ("abseiling,zzz,30,20,validate", ":3: time_end 20 is not after"),
        ("skydiving,zzz,0,10,validate", ":3: label 'skydiving' is not one of"),
        (",zzz,0,10,test", ":3: no label"),
        ("abseiling,zzz", ":3: expected 5 fields"),
    ],
)
def test_kinetics_malformed_rows_name_the_file_and_line(tmp_path, row, message):
    root = kinetics_root(tmp_path)
    path = write(root / "annotations" / "validate.csv", KINETICS_HEADER + "abseiling,ok,0,10,validate\n" + row + "\n")
    with pytest.raises(TaskDatasetError, match=message) as error:
        read_kinetics(root, "validate", require_videos=False)
    assert str(path) in str(error.value)


def test_kinetics_missing_videos_are_reported_unless_not_required(tmp_path):
    root = kinetics_root(tmp_path)
    write(root / "annotations" / "validate.csv", KINETICS_HEADER + "abseiling,gone,0,10,validate\n")
    with pytest.raises(FileNotFoundError, match="gone_000000_000010"):
        read_kinetics(root, "validate")
    assert read_kinetics(root, "validate", require_videos=False).videos[0][1].name == "gone_000000_000010.mp4"


def ssv2_root(tmp_path):
    root = tmp_path / "ssv2"
    labels = {"Putting something on a surface": "0", "Pushing something from left to right": "1"}
    write(root / "something-something-v2-labels.json", json.dumps(labels))
    entries = [
        {"id": "10", "label": "putting a cup on a table", "template": "Putting [something] on a surface", "placeholders": ["a cup"]},
        {"id": "11", "label": "pushing a pen", "template": "Pushing [something] from left to right", "placeholders": ["a pen"]},
    ]
    write(root / "something-something-v2-validation.json", json.dumps(entries, indent=1))
    touch(root / "20bn-something-something-v2" / "10.webm")
    touch(root / "20bn-something-something-v2" / "11.webm")
    return root, entries


def test_something_something_maps_templates_to_label_ids(tmp_path):
    root, _ = ssv2_root(tmp_path)
    split = read_something_something_v2(root, "val")
    assert split.class_names == ["Putting something on a surface", "Pushing something from left to right"]
    assert split.labels == [0, 1] and split.video_ids == ["10", "11"]
    assert split.videos[1][1].suffix == ".webm"


def test_something_something_errors_name_the_entry_line(tmp_path):
    root, entries = ssv2_root(tmp_path)
    entries[1]["template"] = "Dropping [something]"
    path = write(root / "something-something-v2-validation.json", json.dumps(entries, indent=1))
    lines = path.read_text().splitlines()
    second = next(i for i, line in enumerate(lines, start=1) if line.strip() == "{" and i > 2)
    with pytest.raises(TaskDatasetError, match=f"validation.json:{second}: template class 'Dropping something'"):
        read_something_something_v2(root, "validation")
    del entries[1]["template"]
    write(root / "something-something-v2-validation.json", json.dumps(entries, indent=1))
    with pytest.raises(TaskDatasetError, match="has no 'template'"):
        read_something_something_v2(root, "validation")


def test_ucf101_and_hmdb51_split_files(tmp_path):
    ucf = tmp_path / "ucf"
    write(ucf / "ucfTrainTestlist" / "classInd.txt", "1 ApplyEyeMakeup\n2 Archery\n")
    write(ucf / "ucfTrainTestlist" / "trainlist01.txt", "Archery/v_Archery_g08_c01.avi 2\n")
    write(ucf / "ucfTrainTestlist" / "testlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\nArchery/v_Archery_g01_c02.avi\n")
    split = read_ucf101(ucf, "test", require_videos=False)
    assert split.labels == [0, 1] and split.video_ids == ["v_ApplyEyeMakeup_g01_c01", "v_Archery_g01_c02"]
    assert read_ucf101(ucf, "train", require_videos=False).labels == [1]
    write(ucf / "ucfTrainTestlist" / "trainlist01.txt", "Archery/v_Archery_g08_c01.avi 1\n")
    with pytest.raises(TaskDatasetError, match="trainlist01.txt:1: class id 1 disagrees"):
        read_ucf101(ucf, "train", require_videos=False)

    hmdb = tmp_path / "hmdb"
    write(hmdb / "testTrainMulti_7030_splits" / "wave_test_split1.txt", "a.avi 1\nb.avi 2\nc.avi 0\n")
    write(hmdb / "testTrainMulti_7030_splits" / "clap_test_split1.txt", "d.avi 2\n")
    touch(hmdb / "hmdb51" / "wave" / "b.avi")
    touch(hmdb / "hmdb51" / "clap" / "d.avi")
    split = read_hmdb51(hmdb, "test")
    assert split.class_names == ["clap", "wave"] and sorted(zip(split.video_ids, split.labels)) == [("b", 1), ("d", 0)]
    write(hmdb / "testTrainMulti_7030_splits" / "clap_test_split1.txt", "d.avi 2\ne.avi train\n")
    with pytest.raises(TaskDatasetError, match="clap_test_split1.txt:2: expected 'video.avi 0|1|2'"):
        read_hmdb51(hmdb, "test")


CANDIDATES = ["a man is cooking", "a dog runs", "two people dance", "a car drives", "a cat sleeps"]


@pytest.mark.parametrize("form", ["json", "jsonl", "csv"])
def test_msrvtt_mc_in_every_published_form(tmp_path, form):
    root = tmp_path / "msrvtt"
    touch(root / "videos" / "all" / "video7010.mp4")
    touch(root / "videos" / "all" / "video7011.mp4")
    if form == "json":
        items = [{"video": "video7010.mp4", "caption": CANDIDATES, "answer": 2}, {"video": "video7011.mp4", "caption": CANDIDATES[::-1], "answer": 0}]
        write(root / "msrvtt_mc_test.json", json.dumps(items, indent=2))
    elif form == "jsonl":
        lines = [{"qid": 1, "clip_name": "video7010", "options": CANDIDATES, "answer": "2"},
                 {"qid": 2, "clip_name": "video7011", "options": CANDIDATES[::-1], "answer": 0}]  # fmt: skip
        write(root / "msrvtt_mc_test.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n")
    else:
        header = "key\tvid_key\tvideo_id\ta1\ta2\ta3\ta4\ta5\tanswer\n"
        rows = ["k1\tmsr7010\tvideo7010\t" + "\t".join(CANDIDATES) + "\t2", "k2\tmsr7011\tvideo7011\t" + "\t".join(CANDIDATES[::-1]) + "\t0"]
        write(root / "MSR_MC_test.csv", header + "\n".join(rows) + "\n")
    split = load_multiple_choice_split("msrvtt-mc", root)
    assert split.video_ids == ["video7010", "video7011"] and split.answers == [2, 0]
    assert split.candidates[0] == CANDIDATES and split.candidate_texts(1)[0] == "a cat sleeps"
    assert split.videos[0][1] == root / "videos" / "all" / "video7010.mp4"


def test_msrvtt_mc_malformed_items_name_the_file_and_line(tmp_path):
    root = tmp_path / "msrvtt"
    lines = [{"clip_name": "video1", "options": CANDIDATES, "answer": 1}, {"clip_name": "video2", "options": CANDIDATES, "answer": 7}]
    write(root / "msrvtt_mc_test.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n")
    with pytest.raises(TaskDatasetError, match="msrvtt_mc_test.jsonl:2: answer 7 is not one of the 5"):
        read_msrvtt_mc(root, require_videos=False)
    write(root / "msrvtt_mc_test.jsonl", json.dumps(lines[0]) + "\n{not json\n")
    with pytest.raises(TaskDatasetError, match="msrvtt_mc_test.jsonl:2: invalid JSON"):
        read_msrvtt_mc(root, require_videos=False)
    with pytest.raises(ValueError, match="only a test split"):
        read_msrvtt_mc(root, "train")
    with pytest.raises(ValueError, match="unknown multiple-choice dataset"):
        load_multiple_choice_split("nextqa", root)


def test_questions_are_prepended_to_candidates(tmp_path):
    root = tmp_path / "qa"
    item = {"clip_name": "v1", "question": "what does the man do?", "options": ["he cooks", "he runs"], "answer": 1}
    write(root / "msrvtt_mc_test.jsonl", json.dumps(item) + "\n")
    split = read_msrvtt_mc(root, require_videos=False)
    assert split.candidate_texts(0) == ["what does the man do? he cooks", "what does the man do? he runs"]
