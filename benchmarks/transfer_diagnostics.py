"""Where the post-trained host falls short: diagnostics for saved protocol models (issue 9).

For each model folder (a stage-0 host, a control or a Finsta post-trained model from
``finsta-demo --protocol post-training``; their ``runs/<name>`` folders):
* the test split's hard-negative suites for every pairing of text and video modes (host text with
  fused video and so on), which tells whether a fused advantage lives in one tower or needs both;
* the accuracy on the post-training split's own hard negatives (the ones the model trained on), host
  alone: a host that cannot fit what it was trained on is limited by capacity or optimisation, not by
  the quality of its teacher.

    python benchmarks/transfer_diagnostics.py runs/protocol/runs/meanP-control-seed0 runs/protocol/runs/meanP-finsta-latent-seed0
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from modeling_finsta import FinstaModel
from modeling_finsta.demo.post_training import PROTOCOL, QUICK, ProtocolData, prepare_protocol_data
from modeling_finsta.evaluation.encoding import encode_captions, encode_video_batch, evaluation_settings, video_batches
from modeling_finsta.evaluation.hard_negatives import suite_accuracies, suite_captions
from modeling_finsta.evaluation.model_evaluation import synth_suite_items
from modeling_finsta.processing_finsta import FinstaDataCollator

MODES = ("distilled", "fused")


def cross_mode_suites(model: FinstaModel, protocol_data: ProtocolData, dsg: str = "latent") -> dict[str, dict[str, float]]:
    """``{"text <mode> / video <mode>": {suite: accuracy}}`` on the test split."""
    data = protocol_data.data
    samples, raw_suites = data.dataset.split("test")
    suites = synth_suite_items(raw_suites)
    texts, graphs = suite_captions(suites)
    index = {caption: i for i, caption in enumerate(texts)}
    videos: dict[str, torch.Tensor] = {}
    for mode in MODES:
        parts = []
        for batch in video_batches([s.frames for s in samples], data.processor, [s.video_graph for s in samples], 64):
            with evaluation_settings(model, mode):
                parts.append(encode_video_batch(model, batch, torch.device("cpu"), dsg))
        videos[mode] = torch.cat(parts)
    captions = {mode: encode_captions(model, data.processor, texts, graphs, 64, mode=mode, show_progress=False) for mode in MODES}
    return {
        f"text {text_mode} / video {video_mode}": suite_accuracies(videos[video_mode], index, captions[text_mode], suites)
        for text_mode in MODES
        for video_mode in MODES
    }


def training_hard_negative_accuracy(model: FinstaModel, examples: Sequence[dict], batch_size: int = 50) -> float:
    """Host alone: how often a training video is closer to its own caption than to one of its hard negatives."""
    collate = FinstaDataCollator()
    correct = total = 0
    with evaluation_settings(model, "distilled"):
        for start in range(0, len(examples), batch_size):
            batch = collate(list(examples[start : start + batch_size]))
            text = model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).pooler_output
            negative = model.get_text_features(
                input_ids=batch["negative_input_ids"].flatten(0, -2), attention_mask=batch["negative_attention_mask"].flatten(0, -2)
            ).pooler_output
            video = model.get_video_features(pixel_values=batch["pixel_values"], video_mask=batch.get("video_mask")).pooler_output
            has_negative = batch["negative_mask"].bool()  # [B] (one negative each) or [B, K]
            has_negative = has_negative.unsqueeze(-1) if has_negative.dim() == 1 else has_negative  # each pair counts once
            negative = negative.view(*has_negative.shape, -1)
            wins = F.cosine_similarity(text, video).unsqueeze(-1) > F.cosine_similarity(negative, video.unsqueeze(1), dim=-1)
            correct += int((wins & has_negative).sum())
            total += int(has_negative.sum())
    return 100.0 * correct / max(total, 1)


def main(argv=None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="saved model folders")
    parser.add_argument("--quick", action="store_true", help="the models come from a --quick protocol run")
    parser.add_argument("--dsg", default="latent", choices=("latent", "annotated"), help="DSG of the fused video mode")
    parser.add_argument("--output", help="also write the results here as JSON")
    args = parser.parse_args(argv)
    protocol_data = prepare_protocol_data(QUICK if args.quick else PROTOCOL)
    post = protocol_data.post.without("video_scene_graph", "grounding").examples
    results: dict[str, Any] = {}
    for folder in args.models:
        model = FinstaModel.from_pretrained(folder)
        results[folder] = {
            "train_hard_negative_acc": training_hard_negative_accuracy(model, post),
            "test_suites": cross_mode_suites(model, protocol_data, args.dsg),
        }
        print(f"\n{folder}: post-training split hard negatives, host alone {results[folder]['train_hard_negative_acc']:.1f}")
        for pairing, suites in results[folder]["test_suites"].items():
            print(f"  {pairing:32s} " + "  ".join(f"{k} {v:.1f}" for k, v in suites.items() if v is not None))
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(results, handle, indent=2)
    return results


if __name__ == "__main__":
    main()
