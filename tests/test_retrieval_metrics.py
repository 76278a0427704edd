import numpy as np
import pytest
import torch

from modeling_finsta.evaluation import hard_negative_accuracy, retrieval_metrics


def test_one_caption_per_video_with_ties():
    similarity = np.array(
        [
            [0.9, 0.1, 0.2],  # caption 0 -> video 0: rank 1
            [0.3, 0.5, 0.6],  # caption 1 -> video 1: one wrong video higher, rank 2
            [0.2, 0.2, 0.2],  # caption 2 -> video 2: ties with both wrong videos, rank 3
        ]
    )
    metrics = retrieval_metrics(similarity, [0, 1, 2])
    assert metrics["t2v_R@1"] == pytest.approx(100 / 3)
    assert metrics["t2v_R@5"] == metrics["t2v_R@10"] == 100.0
    assert metrics["t2v_MdR"] == 2.0
    assert metrics["t2v_MnR"] == 2.0
    # video->text: video 0 col [.9,.3,.2] rank 1; video 1 col [.1,.5,.2] rank 1;
    # video 2 col [.2,.6,.2]: true caption 0.2 ties caption 0 and loses to caption 1, rank 3.
    assert metrics["v2t_R@1"] == pytest.approx(200 / 3)
    assert metrics["v2t_MdR"] == 1.0
    assert metrics["v2t_MnR"] == pytest.approx(5 / 3)
    assert set(metrics) == {
        f"{direction}_{name}" for direction in ("t2v", "v2t") for name in ("R@1", "R@5", "R@10", "MdR", "MnR")
    }


def test_multiple_captions_per_video():
    similarity = torch.tensor(
        [
            [0.1, 0.95],  # caption 0 (video 0): rank 2
            [0.8, 0.3],  # caption 1 (video 0): rank 1
            [0.5, 0.5],  # caption 2 (video 1): tie, rank 2
            [0.2, 0.9],  # caption 3 (video 1): rank 1
        ]
    )
    metrics = retrieval_metrics(similarity, [0, 0, 1, 1])
    assert metrics["t2v_R@1"] == 50.0
    assert metrics["t2v_MdR"] == 1.5
    assert metrics["t2v_MnR"] == 1.5
    # Video 0: best own caption (0.8) beats every other caption -> rank 1.
    # Video 1: best own caption (0.9) is beaten by caption 0 (0.95) -> rank 2.
    assert metrics["v2t_R@1"] == 50.0
    assert metrics["v2t_R@5"] == 100.0
    assert metrics["v2t_MdR"] == 1.5
    assert metrics["v2t_MnR"] == 1.5


def test_video_to_text_protocols_differ_on_how_competing_captions_count():
    similarity = np.array(
        [
            [0.9, 0.8],  # caption 0 (video 0)
            [0.7, 0.85],  # caption 1 (video 0)
            [0.1, 0.5],  # caption 2 (video 1)
        ]
    )
    # Video 1's only caption (0.5) is beaten by both captions of video 0: rank 3 over captions,
    # rank 2 over videos (CLIP4Clip's grouping counts video 0 once).
    by_captions = retrieval_metrics(similarity, [0, 0, 1])
    by_videos = retrieval_metrics(similarity, [0, 0, 1], video_to_text="videos")
    assert by_captions["v2t_MnR"] == 2.0 and by_captions["v2t_MdR"] == 2.0
    assert by_videos["v2t_MnR"] == 1.5 and by_videos["v2t_R@1"] == 50.0
    assert {k: v for k, v in by_captions.items() if k.startswith("t2v")} == {
        k: v for k, v in by_videos.items() if k.startswith("t2v")
    }
    # With one caption per video both protocols agree.
    square = np.array([[0.2, 0.9, 0.1], [0.3, 0.3, 0.0], [0.5, 0.4, 0.6]])
    assert retrieval_metrics(square, [0, 1, 2]) == retrieval_metrics(square, [0, 1, 2], video_to_text="videos")
    with pytest.raises(ValueError, match=r"video_to_text must be one of"):
        retrieval_metrics(square, [0, 1, 2], video_to_text="paragraphs")


def test_constant_scores_get_the_worst_rank():
    metrics = retrieval_metrics(np.zeros((12, 12)), list(range(12)))
    assert metrics["t2v_R@1"] == metrics["t2v_R@10"] == 0.0
    assert metrics["t2v_MdR"] == metrics["v2t_MnR"] == 12.0


def _reference_ranks(similarity, caption_to_video):
    num_captions, num_videos = similarity.shape
    t2v = []
    for caption in range(num_captions):
        true_video = caption_to_video[caption]
        wrong = [
            v
            for v in range(num_videos)
            if v != true_video and similarity[caption, v] >= similarity[caption, true_video]
        ]
        t2v.append(1 + len(wrong))
    v2t = []
    for video in range(num_videos):
        own = [c for c in range(num_captions) if caption_to_video[c] == video]
        best = None
        for caption in own:
            wrong = [
                other
                for other in range(num_captions)
                if caption_to_video[other] != video and similarity[other, video] >= similarity[caption, video]
            ]
            best = 1 + len(wrong) if best is None else min(best, 1 + len(wrong))
        v2t.append(best)
    v2t_grouped = []
    for video in range(num_videos):
        own_best = max(similarity[c, video] for c in range(num_captions) if caption_to_video[c] == video)
        others = {
            other_video
            for other in range(num_captions)
            if (other_video := caption_to_video[other]) != video and similarity[other, video] >= own_best
        }
        v2t_grouped.append(1 + len(others))
    return np.array(t2v), np.array(v2t), np.array(v2t_grouped)


def test_matches_brute_force_reference():
    generator = np.random.default_rng(0)
    num_videos = 30
    caption_to_video = np.concatenate([np.arange(num_videos), generator.integers(0, num_videos, size=50)])
    # Rounded scores create many ties.
    similarity = np.round(generator.normal(size=(len(caption_to_video), num_videos)), 1)
    similarity[np.arange(len(caption_to_video)), caption_to_video] += 1.0
    t2v, v2t, v2t_grouped = _reference_ranks(similarity, caption_to_video)
    metrics = retrieval_metrics(similarity, caption_to_video.tolist())
    grouped = retrieval_metrics(similarity, caption_to_video, video_to_text="videos")
    for result, prefix, ranks in ((metrics, "t2v", t2v), (metrics, "v2t", v2t), (grouped, "v2t", v2t_grouped)):
        for k in (1, 5, 10):
            assert result[f"{prefix}_R@{k}"] == pytest.approx(100 * np.mean(ranks <= k))
        assert result[f"{prefix}_MdR"] == np.median(ranks)
        assert result[f"{prefix}_MnR"] == pytest.approx(ranks.mean())
    assert 0 < metrics["t2v_R@1"] < 100
    assert v2t_grouped.mean() < v2t.mean()  # the fixture really separates the two protocols


@pytest.mark.parametrize(
    "similarity, caption_to_video, message",
    [
        (np.zeros((3,)), [0, 1, 2], r"must be \[num_captions, num_videos\]"),
        (np.zeros((3, 2)), [0, 1], r"caption_to_video must be 3 integer video indices"),
        (np.zeros((2, 2)), [0, 2], r"must index the 2 videos"),
        (np.zeros((2, 3)), [0, 1], r"videos without one: \[2\]"),
        (np.array([[np.nan, 0.0], [0.0, 1.0]]), [0, 1], r"NaN"),
    ],
)
def test_errors(similarity, caption_to_video, message):
    with pytest.raises(ValueError, match=message):
        retrieval_metrics(similarity, caption_to_video)


def test_hard_negative_accuracy():
    assert hard_negative_accuracy([1.0, 0.5, 0.2], [0.5, 0.5, 0.9]) == pytest.approx(50.0)
    assert hard_negative_accuracy(torch.tensor([1.0, 0.3]), torch.tensor([0.0, 0.0])) == 100.0
    # Several negatives per item: every (item, negative) pair counts once.
    assert hard_negative_accuracy([1.0, 0.0], [[0.0, 1.0], [0.0, -1.0]]) == pytest.approx(
        (1 + 0.5 + 0.5 + 1) / 4 * 100
    )
    with pytest.raises(ValueError, match=r"negative_scores must be \[2\] or \[2, M\]"):
        hard_negative_accuracy([1.0, 0.0], [0.5])
