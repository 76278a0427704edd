"""The embedded default and the post-training protocol end to end at a tiny budget, and what each variant may see."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from transformers import AutoModel

from modeling_finsta.demo import BENCHMARK, DEMO, RESULT_METRICS, VARIANTS, main, parse_arguments, prepare_data


@pytest.fixture(scope="module")
def data():
    return prepare_data(48, 16, seed=1, num_compositional=12)


def test_demo_writes_results_after_every_model_and_a_loadable_checkpoint(tmp_path):
    main(["--steps", "2", "--num-train", "48", "--num-test", "16", "--num-compositional", "12",
          "--seeds", "0", "1", "--only", "meanP,finsta_auto", "--output-dir", str(tmp_path), "--no-progress"])  # fmt: skip
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["per_seed"]) == {"0", "1"}
    for split in ("test", "compositional"):
        rows = results["table"][split]
        assert {"meanP", "finsta_auto_fused", "finsta_auto_distilled", "text-only reference"} <= set(rows)
        for row in ("meanP", "finsta_auto_fused"):
            assert set(RESULT_METRICS) <= set(rows[row])
            mean, sd, count = rows[row]["t2v_R@1"]
            assert 0 <= mean <= 100 and sd >= 0 and count == 2
    assert len(results["_details"]["train_seconds"]) == 4
    model = AutoModel.from_pretrained(tmp_path / "finsta-checkpoint", trust_remote_code=True)
    assert model.config.inference_mode == "fused" and model.config.model_type == "finsta"
    saved = json.loads((tmp_path / "finsta-checkpoint" / "processor_config.json").read_text())
    assert saved["parser_backend"] in ("spacy", "rules")  # the saved checkpoint parses captions as in training


def test_resume_trains_only_what_results_json_lacks_and_refuses_other_settings(tmp_path, capsys):
    common = ["--steps", "2", "--num-train", "48", "--num-test", "16", "--num-compositional", "12",
              "--output-dir", str(tmp_path), "--no-progress"]  # fmt: skip
    main([*common, "--seeds", "0", "--only", "meanP"])
    first = json.loads((tmp_path / "results.json").read_text())
    main([*common, "--seeds", "0", "1", "--only", "meanP,seqTransf", "--resume"])
    printed = capsys.readouterr().out
    assert printed.count("measured already") == 1 and "[meanP-seed0] measured already" in printed
    resumed = json.loads((tmp_path / "results.json").read_text())
    assert resumed["per_seed"]["0"]["test"]["meanP"] == first["per_seed"]["0"]["test"]["meanP"]
    assert {"meanP", "seqTransf"} <= set(resumed["per_seed"]["1"]["compositional"])
    assert set(resumed["_details"]["train_seconds"]) == {"meanP/seed0", "meanP/seed1", "seqTransf/seed0", "seqTransf/seed1"}
    with pytest.raises(SystemExit, match=r"other settings steps=2 \(now 3\)"):
        main([*common[2:], "--steps", "3", "--seeds", "0", "--only", "meanP", "--resume"])


def test_latent_and_automatic_variants_see_no_gold_video_information(data):
    for name, variant in VARIANTS.items():
        examples = data.training_examples(variant).examples
        if variant.dsg == "annotated":
            assert all("video_scene_graph" in e for e in examples)
            assert any(e["text_scene_graph"].get("grounding") is not None for e in examples)
            continue
        for example in examples:
            assert "video_scene_graph" not in example, name
            assert "grounding" not in example.get("text_scene_graph", {}), name


def test_automatic_variant_trains_on_what_the_processor_parses(data):
    examples = data.training_examples(VARIANTS["finsta_auto"]).examples
    parsed = data.processor(text=[s.caption for s in data.dataset.train[:4]])["text_scene_graph"]
    for index in range(4):
        graph = examples[index]["text_scene_graph"]
        nodes = int((graph["node_types"] > 0).sum())
        assert nodes > 0 and torch.equal(graph["node_types"][:nodes], parsed["node_types"][index, :nodes])
        assert torch.equal(graph["edge_types"][:nodes, :nodes], parsed["edge_types"][index, :nodes, :nodes])
        assert not (parsed["node_types"][index, nodes:] > 0).any()
    # ... which is not the gold graph (Finsta-Synth's conventions differ from the parser's).
    differ = 0
    for automatic, gold in zip(examples[:8], data.training_examples(VARIANTS["finsta_gold_latent"]).examples[:8]):
        a, g = automatic["text_scene_graph"]["node_types"], gold["text_scene_graph"]["node_types"]
        differ += a[a > 0].tolist() != g[g > 0].tolist()
    assert differ > 0


def test_shuffled_graph_keeps_nodes_and_scrambles_edges(data):
    from modeling_finsta.demo import shuffled_text_graph

    changed = 0
    for sample in data.dataset.train[:20]:
        shuffled = shuffled_text_graph(sample.text_graph)
        assert shuffled.nodes == sample.text_graph.nodes
        assert sorted(k for _, _, k in shuffled.edges) == sorted(k for _, _, k in sample.text_graph.edges)
        changed += sorted(shuffled.edges) != sorted(sample.text_graph.edges)
        assert shuffled_text_graph(sample.text_graph).edges == shuffled.edges  # the same for a caption every time
    assert changed >= 15


def test_baselines_are_plain_hosts_and_the_capacity_control_has_no_structure():
    for name in ("meanP", "seqTransf"):
        overrides = VARIANTS[name].overrides
        assert overrides["inference_mode"] == "distilled" and not overrides["use_osc"] and not overrides["use_ptc"]
        assert overrides["graph_contrastive_loss_weight"] == 0 and overrides["distillation_loss_weight"] == 0
        assert VARIANTS[name].dsg is None and VARIANTS[name].text_graphs is None
    control = VARIANTS["capacity_control"].overrides
    assert control["use_scene_graph_structure"] is False and control["inference_mode"] == "fused"


def test_budget_presets_and_explicit_overrides():
    demo = parse_arguments([])
    assert (demo.steps, demo.num_train, demo.seeds) == (DEMO["steps"], DEMO["num_train"], list(DEMO["seeds"]))
    benchmark = parse_arguments(["--benchmark"])
    assert (benchmark.steps, benchmark.num_train) == (BENCHMARK["steps"], BENCHMARK["num_train"])
    assert len(benchmark.seeds) >= 3 and set(benchmark.variants) == set(VARIANTS)
    assert parse_arguments(["--benchmark", "--steps", "7"]).steps == 7
    assert parse_arguments(["--seed", "4"]).seeds == [4]


def test_post_training_protocol_caches_stage_zero_and_starts_from_it(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from modeling_finsta.demo import post_training
    from modeling_finsta.demo.post_training import ProtocolBudget, run_protocol

    budget = ProtocolBudget(pretrain_clips=32, post_clips=16, downstream_clips=16, test_clips=12, pretrain_steps=2,
                            post_steps=2, finetune_steps=1, batch_size=8, seeds=(0,))  # fmt: skip
    args = argparse.Namespace(output_dir=str(tmp_path), quick=False, progress=False, seeds=None, budget=budget, cache_dir=None)
    monkeypatch.setattr(post_training, "HOSTS", ("meanP",))
    loaded = []
    original = post_training.FinstaModel.from_pretrained

    def spy(folder, **overrides):
        model = original(folder, **overrides)
        loaded.append((folder, {k: v.clone() for k, v in model.backbone.state_dict().items()}))
        return model

    monkeypatch.setattr(post_training.FinstaModel, "from_pretrained", spy)
    first = run_protocol(args)
    stage0 = sorted((tmp_path / "stage0-cache").glob("stage0-meanP-*"))
    assert len(stage0) == 1 and (stage0[0] / "fingerprint.json").is_file()
    saved = load_file(stage0[0] / "model.safetensors")
    for folder, weights in loaded:  # post-training and the control start from the stage-0 weights
        assert folder == stage0[0]
        for name, value in weights.items():
            assert torch.equal(value, saved[f"backbone.{name}"]), name
    modified = stage0[0] / "model.safetensors"
    mtime = modified.stat().st_mtime_ns
    run_protocol(args)  # a second run reuses stage 0
    assert modified.stat().st_mtime_ns == mtime and len(list((tmp_path / "stage0-cache").glob("stage0-meanP-*"))) == 1
    changed = ProtocolBudget(**{**budget.__dict__, "pretrain_steps": 3})
    run_protocol(argparse.Namespace(**{**vars(args), "budget": changed}))  # a changed setting trains a new one
    assert len(list((tmp_path / "stage0-cache").glob("stage0-meanP-*"))) == 2
    table = first["table"]
    assert {"meanP control", "meanP Finsta latent, host alone", "meanP Finsta annotated, fused", "meanP control, fine-tuned host"} <= set(table)
    assert json.loads((tmp_path / "results.json").read_text())["table"]["test"]


def test_stage_zero_can_train_as_clip4clip_does_with_in_batch_negatives_only(tmp_path, monkeypatch):
    from dataclasses import replace

    from modeling_finsta.demo import post_training
    from modeling_finsta.demo.post_training import HARD_NEGATIVE_FIELDS, ProtocolBudget, prepare_protocol_data, stage0_fingerprint, stage0_host

    budget = ProtocolBudget(pretrain_clips=16, post_clips=8, downstream_clips=4, test_clips=8, pretrain_steps=1,
                            post_steps=1, finetune_steps=1, batch_size=8, seeds=(0,))  # fmt: skip
    in_batch_only = replace(budget, stage0_hard_negatives=False)
    data = prepare_protocol_data(budget)
    seen = []
    original = post_training.train_model
    monkeypatch.setattr(post_training, "train_model", lambda name, model, examples, *a, **k: seen.append(examples) or original(name, model, examples, *a, **k))
    stage0_host("meanP", budget, data, tmp_path, False)
    stage0_host("meanP", in_batch_only, data, tmp_path, False)
    with_negatives, without = seen
    assert all("negative_input_ids" in example for example in with_negatives.examples)
    assert not any(field in example for example in without.examples for field in HARD_NEGATIVE_FIELDS)
    assert len(without.examples) == len(with_negatives.examples)
    assert stage0_fingerprint("meanP", budget, data)[0] != stage0_fingerprint("meanP", in_batch_only, data)[0]
    assert len(list(tmp_path.glob("stage0-meanP-*"))) == 2  # a cached host of the other kind is never reused


def test_transfer_ablations_over_several_seeds_report_mean_and_sd(tmp_path, monkeypatch):
    from modeling_finsta.demo import post_training
    from modeling_finsta.demo.post_training import ProtocolBudget, prepare_protocol_data, run_transfer_ablations, stage0_host

    budget = ProtocolBudget(pretrain_clips=24, post_clips=12, downstream_clips=4, test_clips=12, pretrain_steps=1,
                            post_steps=1, finetune_steps=1, batch_size=6, seeds=(0, 1))  # fmt: skip
    monkeypatch.setattr(post_training, "TRANSFER_ABLATIONS", {"cross-modal": (dict(distillation_target="cross_modal"), {})})
    data = prepare_protocol_data(budget)
    stage0 = {"meanP": stage0_host("meanP", budget, data, tmp_path / "cache", False)}
    result = run_transfer_ablations(data, budget, stage0, tmp_path, False, seeds=[0, 1])
    assert set(result["per_seed"]) == {"0", "1"}
    assert set(result["table"]) == {"control (plain objective)", "default", "cross-modal"}
    assert all(cell[2] == 2 for row in result["table"].values() for cell in row.values() if cell[0] is not None)
    assert set(run_transfer_ablations(data, budget, stage0, tmp_path, False)["per_seed"]) == {"0"}  # default: the first seed


def test_protocol_options_are_checked():
    from modeling_finsta.demo.cli import parse_arguments as parse_args

    with pytest.raises(SystemExit):
        parse_args(["--protocol", "post-training", "--post-clips", "0"])
    with pytest.raises(SystemExit):
        parse_args(["--protocol", "post-training", "--ablation-seeds", "0", "1"])
    args = parse_args(["--protocol", "post-training", "--transfer-ablations", "--ablation-seeds", "0", "1", "--post-clips", "4000"])
    assert args.ablation_seeds == [0, 1] and args.post_clips == 4000


def test_protocol_targets_read_the_printed_difference_and_need_seeds_for_the_noise():
    from modeling_finsta.demo.post_training import targets

    def row(r1, binding, seeds):
        values = {"t2v_R@1": r1, "temporal_acc": 50.0, "binding_acc": binding, "role_acc": 50.0, "static_acc": 80.0}
        return {m: [v, 1.0 if seeds > 1 else 0.0, seeds] for m, v in values.items()}

    one_seed = {"meanP control": row(14.0, 60.0, 1), "meanP Finsta latent, host alone": row(17.0, 58.0, 1)}
    one_seed["meanP control"]["t2v_R@1"][0] = 14.000000000000002  # a mean over seeds: +3.0 must still be met
    (line,) = targets(one_seed)
    assert "t2v_R@1 +3.0 (met" in line and "binding_acc -2.0 (missed" in line and "one seed" in line
    (line,) = targets({"meanP control": row(14.0, 60.0, 3), "meanP Finsta latent, host alone": row(14.0, 58.0, 3)})
    assert "more than one sd below the control on ['binding_acc']" in line
