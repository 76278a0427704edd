"""Tests of the Finsta-Synth generator: determinism, pixel-exact gold graphs, hard negatives, export."""

import csv
import json
import time
from collections import Counter

import numpy as np
import pytest

from modeling_finsta.synth import (
    HARD_NEGATIVE_SUITES,
    PALETTE,
    FinstaSynthConfig,
    generate_finsta_synth,
    export_finsta_synth,
    main,
    reverse_sample,
    write_video,
)
from modeling_finsta.scene_graphs import ParsedTextSceneGraph

PREDICATE_LEMMAS = {"move", "pass", "appear", "disappear", "stay"}
PREDICATE_ATTRIBUTES = {"left", "right", "up", "down", "towards", "away from", "still", "then", "while"}


@pytest.fixture(scope="module")
def config():
    return FinstaSynthConfig(seed=3, num_train=150, num_test=100)


@pytest.fixture(scope="module")
def dataset(config):
    return generate_finsta_synth(config)


@pytest.fixture(scope="module")
def variant_datasets():
    """Non-default configurations: larger frames, three objects, one object, more frames."""
    configs = [
        FinstaSynthConfig(seed=1, num_train=0, num_test=25, image_size=64),
        FinstaSynthConfig(seed=2, num_train=0, num_test=25, objects_per_clip=3),
        FinstaSynthConfig(seed=4, num_train=0, num_test=15, objects_per_clip=1),
        FinstaSynthConfig(seed=5, num_train=0, num_test=15, num_frames=11, shapes=("circle", "diamond")),
    ]
    return [generate_finsta_synth(c) for c in configs]


def all_samples(dataset):
    return dataset.train + dataset.test


# ----------------------------------------------------------------------------------------------
# Helpers that re-derive facts from pixels and gold boxes, independently of the generator
# ----------------------------------------------------------------------------------------------


def pixel_boxes(graph, frame_index, size):
    """track id -> integer pixel box (x1, y1, x2, y2) in one frame."""
    frame = graph.frames[frame_index]
    for obj in frame.objects:
        assert np.allclose(np.asarray(obj.box) * size, np.round(np.asarray(obj.box) * size)), "box off the pixel grid"
    return {obj.track_id: tuple(int(round(c * size)) for c in obj.box) for obj in frame.objects}


def centre_tracks(graph, size, num_tracks):
    """[T, K, 2] box centres in pixels (NaN where invisible)."""
    centres = np.full((len(graph.frames), num_tracks, 2), np.nan)
    for t, frame in enumerate(graph.frames):
        for obj in frame.objects:
            x1, y1, x2, y2 = (c * size for c in obj.box)
            centres[t, obj.track_id - 1] = ((x1 + x2) / 2, (y1 + y2) / 2)
    return centres


def phase_ranges(num_frames, num_phases):
    if num_phases == 1:
        return [(0, num_frames - 1)]
    half = (num_frames - 1) // 2
    return [(0, half), (num_frames - 1 - half, num_frames - 1)]


def check_script_against_boxes(sample, config):
    """Assert that every clause of the caption's script is what the gold boxes show."""
    num_tracks = len(sample.objects)
    centres = centre_tracks(sample.video_graph, config.image_size, num_tracks)
    visible = ~np.isnan(centres[..., 0])
    ranges = phase_ranges(config.num_frames, len(sample.script.phases))
    direction_axes = {"left": (0, -1), "right": (0, 1), "up": (1, -1), "down": (1, 1)}
    for phase, (first, last) in zip(sample.script.phases, ranges):
        movers = set()
        for event in phase:
            s, track = event.subject, centres[first : last + 1, event.subject]
            if event.kind in ("move", "towards", "away", "pass", "still"):
                assert visible[first : last + 1, s].all(), sample.caption
            if event.kind == "move":
                axis, sign = direction_axes[event.direction]
                steps = np.diff(track, axis=0)
                assert (steps[:, axis] * sign >= 0).all() and (track[-1, axis] - track[0, axis]) * sign > 0
                assert (steps[:, 1 - axis] == 0).all(), sample.caption
                movers.add(s)
            elif event.kind in ("towards", "away"):
                distances = np.linalg.norm(track - centres[first : last + 1, event.landmark], axis=-1)
                sign = -1 if event.kind == "towards" else 1
                assert (np.diff(distances) * sign >= 0).all() and (distances[-1] - distances[0]) * sign > 0
                movers.add(s)
            elif event.kind == "pass":
                offsets = track - centres[first : last + 1, event.landmark]
                crossed = np.sign(offsets[0]) * np.sign(offsets[-1]) < 0
                assert crossed.any(), f"{sample.caption}: no side change"
                movers.add(s)
            elif event.kind == "appear":
                assert not visible[first, s] and visible[last:, s].all(), sample.caption
                assert visible[:, s].sum() == num_visible_after_first(visible[:, s])
            elif event.kind == "disappear":
                assert visible[first, s] and not visible[last:, s].any(), sample.caption
            elif event.kind == "still":
                assert (track == track[0]).all(), sample.caption
        for k in set(range(num_tracks)) - movers:  # everything else stays where it is
            seen = centres[first : last + 1, k][visible[first : last + 1, k]]
            assert (seen == seen[:1]).all(), f"{sample.caption}: object {k} moves"
    if len(ranges) == 2:  # nothing moves between the two phases
        gap = centres[ranges[0][1] : ranges[1][0] + 1]
        both = visible[ranges[0][1] : ranges[1][0] + 1].all(axis=0)
        assert (gap[:, both] == gap[:1, both]).all()


def num_visible_after_first(visibility):
    """Number of frames from the first visible one to the end (an object appears only once)."""
    return len(visibility) - int(np.argmax(visibility))


# ----------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------


def test_determinism_and_seed_dependence(config, dataset):
    again = generate_finsta_synth(config)
    for a, b in zip(all_samples(dataset), all_samples(again)):
        assert a.video_id == b.video_id and a.caption == b.caption
        np.testing.assert_array_equal(a.frames, b.frames)
        assert a.text_graph.to_dict() == b.text_graph.to_dict()
        assert a.video_graph == b.video_graph
    for suite in HARD_NEGATIVE_SUITES:
        assert [n.negative for n in dataset.hard_negatives[suite]] == [n.negative for n in again.hard_negatives[suite]]

    other = generate_finsta_synth(FinstaSynthConfig(seed=4, num_train=40, num_test=0))
    assert [s.caption for s in other.train] != [s.caption for s in dataset.train[:40]]
    assert not all(np.array_equal(a.frames, b.frames) for a, b in zip(other.train, dataset.train))

    # The test split does not depend on the size of the training split (only the video ids shift).
    smaller = generate_finsta_synth(FinstaSynthConfig(seed=3, num_train=5, num_test=10))
    assert [s.caption for s in smaller.test] == [s.caption for s in dataset.test[:10]]
    assert smaller.test[0].video_id == "video5" and dataset.test[0].video_id == "video150"


def test_config_validation():
    with pytest.raises(ValueError, match="shapes"):
        FinstaSynthConfig(shapes=("circle", "hexagon"))
    with pytest.raises(ValueError, match="colours"):
        FinstaSynthConfig(colours=("red", "mauve"))
    with pytest.raises(ValueError, match="objects_per_clip"):
        FinstaSynthConfig(objects_per_clip=4)
    with pytest.raises(ValueError, match="num_frames"):
        FinstaSynthConfig(num_frames=3)
    with pytest.raises(ValueError, match="event_kinds"):
        FinstaSynthConfig(event_kinds=("fly",))


def test_frames_format(dataset, config):
    for sample in all_samples(dataset):
        assert sample.frames.dtype == np.uint8
        assert sample.frames.shape == (config.num_frames, config.image_size, config.image_size, 3)
        colours = {tuple(c) for c in sample.frames.reshape(-1, 3)}
        assert tuple(config.background) in colours
        assert colours <= {tuple(config.background)} | {PALETTE[o.colour] for o in sample.objects}
        assert len({(o.shape, o.colour) for o in sample.objects}) == config.objects_per_clip


def test_gold_boxes_match_rendered_pixels(dataset, variant_datasets):
    for data in [dataset] + variant_datasets:
        size, background = data.config.image_size, np.array(data.config.background)
        for sample in all_samples(data):
            for t, frame in enumerate(sample.frames):
                foreground = (frame != background).any(axis=-1)
                covered = np.zeros_like(foreground)
                for track_id, (x1, y1, x2, y2) in pixel_boxes(sample.video_graph, t, size).items():
                    obj = sample.objects[track_id - 1]
                    assert 0 <= x1 < x2 <= size and 0 <= y1 < y2 <= size
                    own = (frame[y1:y2, x1:x2] == PALETTE[obj.colour]).all(axis=-1)
                    assert own.mean() >= 0.45, f"{obj} fills {own.mean():.2f} of its box"
                    # Tight: every edge row and column of the box holds a pixel of the object.
                    assert own[0].any() and own[-1].any() and own[:, 0].any() and own[:, -1].any()
                    # No pixel of another object inside this box.
                    assert (own | ~foreground[y1:y2, x1:x2]).all()
                    covered[y1:y2, x1:x2] = True
                assert not (foreground & ~covered).any(), "drawn pixels outside every gold box"


def test_tracks_are_consistent(dataset, variant_datasets):
    for data in [dataset] + variant_datasets:
        for sample in all_samples(data):
            graph = sample.video_graph
            assert [f.index for f in graph.frames] == list(range(data.config.num_frames))
            for t, frame in enumerate(graph.frames):
                ids = [o.track_id for o in frame.objects]
                assert len(ids) == len(set(ids))
                assert sorted(ids) == [k + 1 for k in np.flatnonzero(sample.visible[t])]
                for obj in frame.objects:
                    expected = sample.objects[obj.track_id - 1]
                    assert obj.label == expected.shape and obj.attributes == [expected.colour]
                for relation in frame.relations:
                    assert relation.subject in ids and relation.object in ids
            # A track is visible over one contiguous run of frames (appears/disappears at most once).
            for k in range(len(sample.objects)):
                runs = np.flatnonzero(np.diff(sample.visible[:, k].astype(int)))
                assert len(runs) <= 1


def test_captions_describe_the_pixels(dataset, variant_datasets):
    for data in [dataset] + variant_datasets:
        for sample in all_samples(data):
            check_script_against_boxes(sample, data.config)
            check_script_against_boxes(reverse_sample(sample, data.config), data.config)


def test_video_relations(dataset, config):
    towards_seen = 0
    for sample in all_samples(dataset):
        for frame in sample.video_graph.frames:
            relations = {(r.subject, r.predicate, r.object) for r in frame.relations}
            boxes = pixel_boxes(sample.video_graph, frame.index, config.image_size)
            for a in boxes:
                for b in boxes:
                    if a == b:
                        continue
                    dx = (boxes[b][0] + boxes[b][2]) / 2 - (boxes[a][0] + boxes[a][2]) / 2
                    dy = (boxes[b][1] + boxes[b][3]) / 2 - (boxes[a][1] + boxes[a][3]) / 2
                    expected = ("left of" if dx > 0 else "right of") if abs(dx) >= abs(dy) else (
                        "above" if dy > 0 else "below"
                    )
                    assert (a, expected, b) in relations
                    assert ((a, "near", b) in relations) == ((b, "near", a) in relations)
        ranges = phase_ranges(config.num_frames, len(sample.script.phases))
        for phase, (first, last) in zip(sample.script.phases, ranges):
            for event in phase:
                if event.kind not in ("towards", "away"):
                    continue
                # The motion relation of frame t describes the step from frame t - 1 to t.
                predicates = {
                    r.predicate
                    for f in sample.video_graph.frames[first + 1 : last + 1]
                    for r in f.relations
                    if (r.subject, r.object) == (event.subject + 1, event.landmark + 1)
                }
                expected, unexpected = ("moving towards", "moving away from")[:: 1 if event.kind == "towards" else -1]
                assert expected in predicates and unexpected not in predicates, sample.caption
                towards_seen += 1
    assert towards_seen > 0


def test_text_graph_spans_and_structure(dataset, variant_datasets):
    captions = []
    for data in [dataset] + variant_datasets:
        captions += [(s.caption, s.text_graph, s.script) for s in all_samples(data)]
        for suite in data.hard_negatives.values():
            captions += [(n.negative, n.negative_graph, None) for n in suite]
    for caption, graph, script in captions:
        assert graph.caption == caption
        for node in graph.nodes:
            assert node.spans
            for start, end in node.spans:
                assert caption[start:end] == node.text
        kinds = Counter(node.kind for node in graph.nodes)
        assert kinds["object"] == kinds["attribute"]
        subject_edges = Counter(target for _, target, kind in graph.edges if kind == "subject")
        for index, node in enumerate(graph.nodes):
            if node.kind == "predicate":
                assert node.lemma in PREDICATE_LEMMAS and subject_edges[index] == 1
            if node.kind == "predicate_attribute":
                assert node.lemma in PREDICATE_ATTRIBUTES
        assert ("then" in caption) == any(n.lemma == "then" for n in graph.nodes)
        assert ParsedTextSceneGraph.from_dict(json.loads(json.dumps(graph.to_dict()))).to_dict() == graph.to_dict()
        if script is not None:
            assert kinds["predicate"] == len(script.events())
            assert kinds["object"] == len({e for event in script.events() for e in event.entities()})


def test_text_graph_of_a_known_caption(dataset):
    sample = next(
        s
        for s in dataset.train + dataset.test
        if len(s.script.phases) == 2 and s.script.phases[0][0].kind == "towards"
    )
    graph = sample.text_graph
    mover, landmark = (sample.objects[i] for i in sample.script.phases[0][0].entities())
    assert sample.caption.startswith(f"{mover.phrase} moves towards {landmark.phrase}, then ")
    assert (mover.shape, "move", landmark.shape) in graph.triplets()
    lemmas = [n.lemma for n in graph.nodes]
    assert lemmas[:6] == [mover.shape, mover.colour, "move", "towards", landmark.shape, landmark.colour]
    then = graph.nodes[lemmas.index("then")]
    assert then.kind == "predicate_attribute"
    second_predicate = [i for i, n in enumerate(graph.nodes) if n.kind == "predicate"][1]
    assert (second_predicate, lemmas.index("then"), "predicate_attribute") in graph.edges


# ----------------------------------------------------------------------------------------------
# Hard-negative suites
# ----------------------------------------------------------------------------------------------


def test_suites_are_populated(dataset):
    counts = {suite: len(items) for suite, items in dataset.hard_negatives.items()}
    assert set(counts) == set(HARD_NEGATIVE_SUITES)
    assert counts["static"] == len(dataset.test) and counts["temporal"] > 0.7 * len(dataset.test)
    assert counts["binding"] > 10 and counts["role"] > 10
    for suite, items in dataset.hard_negatives.items():
        for item in items:
            assert item.suite == suite and item.negative != item.caption
            assert item.caption == dataset.test[item.video_index].caption
            assert item.video_id == dataset.test[item.video_index].video_id
            assert item.caption_graph.caption == item.caption and item.negative_graph.caption == item.negative


def test_temporal_negative_is_the_caption_of_the_reversed_clip(dataset, config):
    suite = {n.video_index: n for n in dataset.hard_negatives["temporal"]}
    for index, sample in enumerate(dataset.test):
        reversed_clip = reverse_sample(sample, config)
        np.testing.assert_array_equal(reversed_clip.frames, sample.frames[::-1])
        # An order-blind model (mean over frames) sees the same input for both captions.
        np.testing.assert_array_equal(reversed_clip.frames.mean(axis=0), sample.frames.mean(axis=0))
        if index in suite:
            assert suite[index].negative == reversed_clip.caption
            assert suite[index].negative_graph.to_dict() == reversed_clip.text_graph.to_dict()
        else:  # only captions that read the same backwards are left out
            assert reversed_clip.caption == sample.caption
        # Reversing twice gives the clip back.
        twice = reverse_sample(reversed_clip, config)
        assert twice.caption == sample.caption and twice.video_graph == sample.video_graph


def test_caption_distribution_is_balanced():
    """Each clause and its time-reversed clause are about equally frequent, so text priors cannot help."""
    data = generate_finsta_synth(FinstaSynthConfig(seed=11, num_train=600, num_test=0))
    words = Counter()
    for sample in data.train:
        for event in sample.script.events():
            words[event.direction or event.kind] += 1
    for a, b in [("left", "right"), ("up", "down"), ("towards", "away"), ("appear", "disappear")]:
        assert abs(words[a] - words[b]) <= 0.3 * max(words[a], words[b]), (a, b, words)
    first_mentioned = Counter(s.objects[s.script.phases[0][0].subject].colour for s in data.train)
    assert max(first_mentioned.values()) < 1.5 * min(first_mentioned.values())


def word_diff(caption, negative):
    a, b = caption.replace(",", " ,").split(" "), negative.replace(",", " ,").split(" ")
    assert len(a) == len(b), (caption, negative)
    return [(i, x, y) for i, (x, y) in enumerate(zip(a, b)) if x != y]


def test_binding_negatives_swap_colours_only(dataset):
    for item in dataset.hard_negatives["binding"]:
        sample = dataset.test[item.video_index]
        diff = word_diff(item.caption, item.negative)
        assert diff and all(x in PALETTE and y in PALETTE for _, x, y in diff)
        assert {x for _, x, _ in diff} == {y for _, _, y in diff} and len({x for _, x, _ in diff}) == 2
        # Shapes keep their order; the two objects' colours are exchanged.
        assert item.negative_graph.objects() == item.caption_graph.objects()
        true_pairs = {(o.shape, o.colour) for o in sample.objects}
        mentioned = set(zip(item.negative_graph.objects(), attribute_lemmas(item.negative_graph)))
        assert len(mentioned - true_pairs) == 2


def attribute_lemmas(graph):
    return [graph.nodes[target].lemma for _, target, kind in graph.edges if kind == "attribute"]


def test_role_negatives_swap_subject_and_object(dataset):
    verbs = {"towards": "moves towards", "away": "moves away from", "pass": "passes"}
    for item in dataset.hard_negatives["role"]:
        sample = dataset.test[item.video_index]
        event = next(e for e in sample.script.events() if e.landmark is not None)
        subject, landmark = sample.objects[event.subject].phrase, sample.objects[event.landmark].phrase
        clause = f"{subject} {verbs[event.kind]} {landmark}"
        assert clause in item.caption
        assert item.negative == item.caption.replace(clause, f"{landmark} {verbs[event.kind]} {subject}", 1)
        true_triplet = next(t for t in item.caption_graph.triplets() if t[2] is not None)
        negative_triplet = next(t for t in item.negative_graph.triplets() if t[2] is not None)
        assert negative_triplet == (true_triplet[2], true_triplet[1], true_triplet[0])


def test_static_negatives_name_something_absent(dataset, config):
    for item in dataset.hard_negatives["static"]:
        sample = dataset.test[item.video_index]
        diff = word_diff(item.caption, item.negative)
        assert diff and len({(x, y) for _, x, y in diff}) == 1
        _, old, new = diff[0]
        if new in PALETTE:
            assert old in {o.colour for o in sample.objects} and new not in {o.colour for o in sample.objects}
            assert new in config.colours
        else:
            assert new in config.shapes and new not in {o.shape for o in sample.objects}


# ----------------------------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    data = generate_finsta_synth(FinstaSynthConfig(seed=7, num_train=6, num_test=8))
    root = export_finsta_synth(data, tmp_path_factory.mktemp("finsta_synth"), progress=False)
    return data, root


def read_jsonl(path):
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_export_layout_parses(exported):
    from modeling_finsta.video_scene_graph_io import read_video_scene_graph

    data, root = exported
    samples = data.train + data.test
    for sample in samples:
        assert (root / "videos" / "all" / f"{sample.video_id}.mp4").stat().st_size > 0
        graph = read_video_scene_graph(root / "scene_graphs" / f"{sample.video_id}.json")
        assert len(graph.frames) == len(sample.video_graph.frames)
        for read, gold in zip(graph.frames, sample.video_graph.frames):
            assert [(o.track_id, o.label, o.attributes) for o in read.objects] == [
                (o.track_id, o.label, o.attributes) for o in gold.objects
            ]
            np.testing.assert_allclose([o.box for o in read.objects], [o.box for o in gold.objects], atol=1e-9)
            assert read.relations == gold.relations

    meta = json.loads((root / "MSRVTT_data.json").read_text())
    assert [v["video_id"] for v in meta["videos"]] == [s.video_id for s in samples]
    assert {v["split"] for v in meta["videos"]} == {"train", "test"}
    for video in meta["videos"]:
        assert {"video_id", "category", "url", "start time", "end time", "split", "id"} <= set(video)
        assert video["video_id"] == f"video{video['id']}"
    assert [(s["video_id"], s["caption"]) for s in meta["sentences"]] == [(s.video_id, s.caption) for s in samples]

    with open(root / "MSRVTT_train.9k.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["video_id"] and [r[0] for r in rows[1:]] == [s.video_id for s in data.train]
    with open(root / "MSRVTT_JSFUSION_test.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["", "key", "vid_key", "video_id", "sentence"]
    for i, (row, sample) in enumerate(zip(rows[1:], data.test)):
        assert row == [str(i), f"ret{i}", f"msr{sample.video_id[5:]}", sample.video_id, sample.caption]
    assert len(rows) == len(data.test) + 1

    text_graphs = {
        r["caption"]: ParsedTextSceneGraph.from_dict(r["graph"]) for r in read_jsonl(root / "text_scene_graphs.jsonl")
    }
    for sample in samples:
        assert text_graphs[sample.caption].to_dict() == sample.text_graph.to_dict()
    for suite in HARD_NEGATIVE_SUITES:
        records = read_jsonl(root / "hard_negatives" / f"{suite}.jsonl")
        assert [(r["video_id"], r["caption"], r["negative"]) for r in records] == [
            (n.video_id, n.caption, n.negative) for n in data.hard_negatives[suite]
        ]
        for record in records:
            assert record["negative"] in text_graphs


def test_exported_videos_decode_to_the_rendered_frames(exported):
    av = pytest.importorskip("av")
    data, root = exported
    worst = 0
    for sample in data.train + data.test:
        with av.open(str(root / "videos" / "all" / f"{sample.video_id}.mp4")) as container:
            stream = container.streams.video[0]
            assert float(stream.average_rate) == data.config.fps
            decoded = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(stream)])
        assert decoded.shape == sample.frames.shape
        worst = max(worst, int(np.abs(decoded.astype(int) - sample.frames.astype(int)).max()))
    assert worst <= 2, f"lossless x264 4:4:4 should be within colour-conversion rounding, got {worst}"


def test_write_video_mpeg4_fallback_is_close(tmp_path, dataset):
    av = pytest.importorskip("av")
    frames = dataset.train[0].frames
    write_video(frames, tmp_path / "clip.mp4", codec="mpeg4")
    with av.open(str(tmp_path / "clip.mp4")) as container:
        decoded = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 10  # lossy 4:2:0 chroma at edges


def test_cli(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--out", str(out), "--num-train", "3", "--num-test", "2", "--seed", "1", "--no-progress"]) == 0
    assert "3 train and 2 test clips" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "videos" / "all").iterdir()) == [f"video{i}.mp4" for i in range(5)]
    assert len(list((out / "scene_graphs").iterdir())) == 5


def test_generation_speed_sanity():
    start = time.perf_counter()
    data = generate_finsta_synth(FinstaSynthConfig(seed=0, num_train=200, num_test=0))
    elapsed = time.perf_counter() - start
    assert len(data.train) == 200
    print(f"generated 200 clips in {elapsed:.2f}s ({1000 * elapsed / 200:.1f} ms/clip)")


def test_compositional_split_shares_no_held_out_combination_with_training():
    from modeling_finsta.synth import COMPOSITIONAL_HELD_OUT, script_combinations

    config = FinstaSynthConfig(seed=3, num_train=300, num_test=60, num_compositional=40, held_out=COMPOSITIONAL_HELD_OUT)
    dataset = generate_finsta_synth(config)
    held_out = set(COMPOSITIONAL_HELD_OUT)
    for sample in dataset.train + dataset.test:
        assert not script_combinations(sample.script, sample.objects) & held_out, sample.caption
    assert len(dataset.compositional) == 40
    for sample in dataset.compositional:
        assert script_combinations(sample.script, sample.objects) & held_out, sample.caption
    train_captions = {s.caption for s in dataset.train}
    assert not train_captions & {s.caption for s in dataset.compositional}
    assert {s.video_id for s in dataset.compositional}.isdisjoint({s.video_id for s in dataset.train + dataset.test})
    assert set(dataset.compositional_hard_negatives) == set(dataset.hard_negatives)
    assert all(n.video_index < 40 for suite in dataset.compositional_hard_negatives.values() for n in suite)
    assert sum(len(suite) for suite in dataset.compositional_hard_negatives.values()) > 40
    # The held-out combinations are really in the distribution: without holding them out, training has them.
    plain = generate_finsta_synth(FinstaSynthConfig(seed=3, num_train=300, num_test=0))
    assert any(script_combinations(s.script, s.objects) & held_out for s in plain.train)


def test_held_out_combinations_are_validated():
    with pytest.raises(ValueError, match="held_out"):
        FinstaSynthConfig(held_out=(("mauve", "triangle", "towards", "subject"),))
    with pytest.raises(ValueError, match="landmark"):
        FinstaSynthConfig(held_out=(("red", "triangle", "appear", "landmark"),))
    with pytest.raises(ValueError, match="num_compositional"):
        FinstaSynthConfig(num_compositional=5)
