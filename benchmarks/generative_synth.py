"""Finsta vs the plain host on the generative Finsta-Synth (equal budget), and fused generation cost.

Part 1, quality: for each host family (tiny random Video-LLaVA-style and Qwen2-VL-style hosts, trained
from scratch on CPU) and each seed, the plain host and Finsta are trained on the same examples in the
same order with the same batch size, steps and schedule; Finsta is then evaluated fused and distilled
(host only). ``--dsg annotated`` (default) trains and tests Finsta with the gold DSGs, ``--dsg latent``
with the latent DSG built from the host's own patches (what a user without scene graphs runs).
Reported: open-ended QA exact match per category (order, direction: order-sensitive; role:
role-sensitive; attribute: control), captioning BLEU-4 / CIDEr, multiple-choice accuracy (true caption
vs time-reversed / role-swapped / colour-swapped captions), mean +- sd over seeds.

Part 2, cost: fused Finsta vs the host at Video-LLaVA-7B shapes (CLIP ViT-L/14 tower at 224 px, 8 frames
-> 2056 visual tokens, LLaMA width 4096 / 32 heads / MLP 11008, vocabulary 32064, a few layers, random
weights, fp32 on CPU). Prefill (tower, graph head, LLM over the prompt) and cached decoding steps are
timed separately (interleaved repeats, minimum); decoding steps run the host alone in both, so the
per-generated-token cost of an answer of A tokens is (prefill + A x decode) / A.

    python benchmarks/generative_synth.py                       # the full run (~25 minutes on 2 shared cores)
    python benchmarks/generative_synth.py --steps 20 --num-train 60 --num-test 20 --seeds 0 --cost-layers 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Optional

import torch

from modeling_finsta import FinstaForConditionalGeneration, FinstaGenerationConfig
from modeling_finsta.evaluation import evaluate_generative_multiple_choice, evaluate_open_ended
from modeling_finsta.processing_finsta_generation import FinstaGenerationProcessor
from modeling_finsta.synth import FinstaSynthConfig
from modeling_finsta.synth import CAPTION_QUESTION, generate_generative_finsta_synth, generative_vocabulary
from modeling_finsta.training import synth_examples, train_generative
from modeling_finsta.training import tiny_video_llm_config, video_llm_tokenizer

PROMPT = "{video} question: {question} answer:"
FAMILY_SIZES = {"video_llava": dict(patch_size=8), "qwen2_vl": dict(patch_size=4)}
HEAD = dict(graph_hidden_size=64, graph_num_heads=4, text_graph_num_layers=1, video_graph_num_layers=2, num_latent_slots=4)
HEADLINE = ("qa_order", "qa_direction", "qa_role", "qa_attribute", "qa_accuracy", "mc_accuracy", "bleu4", "cider")


def evaluate(model, processor, data, mode: Optional[str], dsg: str) -> dict:
    """Test QA, captions and MC; with ``dsg="annotated"`` a Finsta model gets the gold test DSGs it was trained with."""
    videos = [sample.frames for sample in data.test]
    graphs = [sample.video_graph for sample in data.test] if dsg == "annotated" else None
    results = evaluate_open_ended(model, processor, data.test_items, videos, mode=mode, video_scene_graphs=graphs)
    results.update(
        evaluate_generative_multiple_choice(model, processor, data.test_multiple_choice, videos, CAPTION_QUESTION, mode=mode, video_scene_graphs=graphs)
    )
    return results


def run_quality(args) -> dict:
    rows: dict[str, dict[str, list[float]]] = {}
    for seed in args.seeds:
        data = generate_generative_finsta_synth(
            FinstaSynthConfig(seed=seed, objects_per_clip=3, num_frames=args.num_frames, num_train=args.num_train, num_test=args.num_test)
        )
        tokenizer = video_llm_tokenizer(generative_vocabulary(data) + ["question", "answer", ":"])
        examples = synth_examples(data, "train", dsg=args.dsg)
        for family in args.families:
            host_config = tiny_video_llm_config(family, tokenizer, **FAMILY_SIZES[family])
            processor = FinstaGenerationProcessor.from_host_config(tokenizer, host_config, num_frames=args.num_frames, image_size=32, prompt_template=PROMPT)
            for variant in ("host", "finsta"):
                torch.manual_seed(seed)
                config = FinstaGenerationConfig(backbone_config=host_config, **{**HEAD, **args.config_overrides})
                model = FinstaForConditionalGeneration(config)
                model = model.backbone if variant == "host" else model  # same host initialisation
                started = time.time()
                with tempfile.TemporaryDirectory() as output:
                    train_generative(model, processor, examples, output, max_steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate, seed=seed)
                train_seconds = time.time() - started
                modes = [None] if variant == "host" else ["fused", "distilled"]
                for mode in modes:
                    name = f"{family}/{variant}" + ("" if mode is None else f"-{mode}")
                    result = evaluate(model, processor, data, mode, args.dsg)
                    result["train_seconds"] = train_seconds
                    print(name, f"seed {seed}", {k: round(result[k], 1) for k in HEADLINE if k in result}, flush=True)
                    for key, value in result.items():
                        if isinstance(value, (int, float)):
                            rows.setdefault(name, {}).setdefault(key, []).append(float(value))
                    if args.partial_output:  # an interrupted run still leaves every finished row
                        Path(args.partial_output).write_text(json.dumps(rows, indent=1))
    return {name: {key: summary(values) for key, values in metrics.items()} for name, metrics in rows.items()}


def summary(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)}


def run_cost(args) -> dict:
    """Per-generated-token cost ratio, fused Finsta / host, at Video-LLaVA-7B shapes with ``args.cost_layers`` layers."""
    from transformers import VideoLlavaConfig

    host_config = VideoLlavaConfig(
        vision_config=dict(
            model_type="clip_vision_model", hidden_size=1024, intermediate_size=4096, num_hidden_layers=args.cost_layers,
            num_attention_heads=16, image_size=224, patch_size=14, projection_dim=768,
        ),
        text_config=dict(
            model_type="llama", vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=args.cost_layers,
            num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        ),
        image_token_index=32000, video_token_index=32001, vision_feature_layer=-2 if args.cost_layers > 1 else -1,
    )  # fmt: skip
    torch.manual_seed(0)
    finsta = FinstaForConditionalGeneration(FinstaGenerationConfig(backbone_config=host_config)).eval()
    torch.nn.init.normal_(finsta.finsta_head.refiner.output.weight, std=0.02)  # a trained (non-zero) head
    host = finsta.backbone
    frames = 8
    prompt = torch.tensor([[1] + [5] * 10 + [32001] * (frames * 257) + [6] * 20])
    video = torch.randn(1, frames, 3, 224, 224)
    new = args.cost_new_tokens

    def prefill(model):
        with torch.no_grad():
            return model(input_ids=prompt, pixel_values_videos=video, use_cache=True, logits_to_keep=1)

    def decode_seconds(model, cache) -> float:
        """Seconds per decoding step with the KV cache (the prompt's cache, extended token by token)."""
        token = torch.tensor([[7]])
        started = time.perf_counter()
        with torch.no_grad():
            for _ in range(new):
                out = model(input_ids=token, past_key_values=cache, use_cache=True, logits_to_keep=1)
                cache = out.past_key_values
        return (time.perf_counter() - started) / new

    timings = {"host": {"prefill": [], "decode": []}, "finsta_fused": {"prefill": [], "decode": []}}
    prefill(host), prefill(finsta)  # warm-up
    for _ in range(args.cost_repeats):  # interleaved, so load changes hit both models alike
        for name, model in (("host", host), ("finsta_fused", finsta)):
            started = time.perf_counter()
            out = prefill(model)
            timings[name]["prefill"].append(time.perf_counter() - started)
            timings[name]["decode"].append(decode_seconds(model, out.past_key_values))
    result = {name: {"prefill_seconds": min(t["prefill"]), "decode_seconds_per_token": min(t["decode"])} for name, t in timings.items()}
    answer = args.cost_answer_tokens
    for name in result:
        r = result[name]
        r[f"seconds_per_generated_token_{answer}"] = (r["prefill_seconds"] + answer * r["decode_seconds_per_token"]) / answer
    host_r, finsta_r = result["host"], result["finsta_fused"]
    result["decode_ratio"] = finsta_r["decode_seconds_per_token"] / host_r["decode_seconds_per_token"]
    result["prefill_ratio"] = finsta_r["prefill_seconds"] / host_r["prefill_seconds"]
    key = f"seconds_per_generated_token_{answer}"
    result["per_generated_token_ratio"] = finsta_r[key] / host_r[key]
    result["setup"] = (
        f"Video-LLaVA-7B shapes ({args.cost_layers} vision + {args.cost_layers} LLM layers, random weights), {frames} frames = "
        f"{frames * 257} visual tokens, prompt {prompt.shape[1]} tokens, fp32 CPU; min over {args.cost_repeats} interleaved repeats; "
        f"decode = {new} cached steps; per generated token = (prefill + {answer} x decode) / {answer}"
    )
    print("cost", json.dumps(result), flush=True)
    return result


def format_table(quality: dict) -> str:
    lines = ["| model | " + " | ".join(HEADLINE) + " |", "| --- |" + " --- |" * len(HEADLINE)]
    for name, metrics in quality.items():
        cells = [f"{metrics[k]['mean']:.1f} ± {metrics[k]['sd']:.1f}" if k in metrics else "-" for k in HEADLINE]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--families", nargs="+", default=["video_llava", "qwen2_vl"], choices=sorted(FAMILY_SIZES))
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--num-train", type=int, default=300)
    parser.add_argument("--num-test", type=int, default=40)
    parser.add_argument("--num-frames", type=int, default=4)
    parser.add_argument("--dsg", choices=["annotated", "latent"], default="annotated",
                        help="Finsta's DSG in training and test: the gold graphs, or the latent one built from the host's patches")
    parser.add_argument("--config-overrides", type=json.loads, default={}, metavar="JSON",
                        help='FinstaGenerationConfig fields for the Finsta model, e.g. \'{"fused_contrastive_loss_weight": 0.5}\'')
    parser.add_argument("--partial-output", default=None, help="JSON file rewritten after every evaluated model")
    parser.add_argument("--cost-layers", type=int, default=2)
    parser.add_argument("--cost-new-tokens", type=int, default=8, help="cached decoding steps timed")
    parser.add_argument("--cost-answer-tokens", type=int, default=16, help="answer length for the per-generated-token cost")
    parser.add_argument("--cost-repeats", type=int, default=3)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--output", default="generative-synth-results.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    started = time.time()
    report: dict = {"arguments": vars(args)}
    if not args.skip_cost:
        report["cost"] = run_cost(args)
    if not args.skip_quality:
        report["quality"] = run_quality(args)
        print(format_table(report["quality"]))
    report["wall_seconds"] = time.time() - started
    Path(args.output).write_text(json.dumps(report, indent=2))
    print(f"wall time {report['wall_seconds']:.0f} s; results in {args.output}")
    return report


if __name__ == "__main__":
    main()
