"""The embedded default end to end at a tiny budget: every model trains, results.json has every key."""

from __future__ import annotations

import json

import torch
from transformers import AutoModel

from modeling_finsta.demo import BENCHMARK, DEMO, RESULT_METRICS, main, model_variants, parse_arguments


def test_demo_writes_results_and_a_loadable_checkpoint(tmp_path):
    main(["--steps", "3", "--num-train", "64", "--num-test", "24", "--output-dir", str(tmp_path)])
    results = json.loads((tmp_path / "results.json").read_text())
    expected = {
        "meanP", "seqTransf", "finsta_annotated_fused", "finsta_annotated_distilled",
        "finsta_latent_fused", "finsta_latent_distilled",
    }  # fmt: skip
    assert expected <= set(results)
    for key in expected:
        assert set(RESULT_METRICS) <= set(results[key]), key
        for metric in ("temporal_acc", "binding_acc", "role_acc", "static_acc", "t2v_R@1"):
            assert 0.0 <= results[key][metric] <= 100.0
    quality = results["_details"]["latent_dsg_quality"]
    assert 0.0 <= quality["centroid_in_box"] <= 100.0
    model = AutoModel.from_pretrained(tmp_path / "finsta-checkpoint", trust_remote_code=True)
    assert model.config.inference_mode == "fused" and model.config.model_type == "finsta"


def test_baselines_are_plain_hosts():
    variants = model_variants()
    for name in ("meanP", "seqTransf"):
        overrides, annotated = variants[name]
        assert overrides["inference_mode"] == "distilled" and not overrides["use_osc"] and not overrides["use_ptc"]
        assert overrides["graph_contrastive_loss_weight"] == 0 and overrides["distillation_loss_weight"] == 0
        assert not annotated
    assert variants["finsta_annotated"][1] and not variants["finsta_latent"][1]


def test_budget_presets_and_explicit_overrides():
    demo = parse_arguments([])
    assert (demo.steps, demo.num_train) == (DEMO["steps"], DEMO["num_train"])
    benchmark = parse_arguments(["--benchmark"])
    assert (benchmark.steps, benchmark.num_train) == (BENCHMARK["steps"], BENCHMARK["num_train"])
    assert BENCHMARK["steps"] > DEMO["steps"]
    assert parse_arguments(["--benchmark", "--steps", "7"]).steps == 7
