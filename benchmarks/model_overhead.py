"""Finsta's cost over its host, measured side by side in one run (ratios; these machines are noisy).

For each size (tiny, ViT-B/32 with random weights), with T frames and batch B:
* inference: plain CLIP4Clip meanP (CLIP per frame + mean, called directly on the backbone) vs
  Finsta fused (latent DSG from the host's patch tokens + graph encoders) vs Finsta distilled;
* post-training step (forward + backward + AdamW step): plain CLIP4Clip (InfoNCE only) vs Finsta
  (InfoNCE + graph InfoNCE + OSC + PTC + distillation, with a text scene graph per caption).
Measurements alternate between the variants and report the median of the repeats.

    python benchmarks/model_overhead.py --sizes tiny,vit-b-32 --frames 12 --batch 8
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import CLIPConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from modeling_finsta import FinstaConfig, FinstaModel  # noqa: E402
from modeling_finsta.losses import contrastive_loss  # noqa: E402
from tiny_models import example_inputs, tiny_clip_config  # noqa: E402


def make_model(size: str) -> tuple[FinstaModel, int, int]:
    if size == "tiny":
        backbone, image, graph_hidden = tiny_clip_config(), 32, 32
    elif size == "vit-b-32":
        backbone, image, graph_hidden = CLIPConfig(), 224, 256
    else:
        raise SystemExit(f"unknown size {size!r}; use tiny or vit-b-32")
    config = FinstaConfig(backbone_config=backbone, graph_hidden_size=graph_hidden, temporal_head="meanP")
    return FinstaModel(config), image, backbone.text_config.max_position_embeddings


def inputs_for(batch: int, frames: int, image: int, length: int) -> dict:
    inputs = example_inputs(batch=batch, frames=frames, length=min(length, 16), nodes=6)
    inputs["pixel_values"] = torch.randn(batch, frames, 3, image, image)
    return inputs


def plain_meanp(model: FinstaModel, inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    clip = model.backbone
    batch, frames = inputs["pixel_values"].shape[:2]
    frame_embeds = clip.get_image_features(pixel_values=inputs["pixel_values"].flatten(0, 1)).pooler_output
    frame_embeds = F.normalize(frame_embeds.view(batch, frames, -1), dim=-1)
    video = F.normalize(frame_embeds.mean(1), dim=-1)
    text = clip.get_text_features(inputs["input_ids"], inputs["attention_mask"]).pooler_output
    return text, video


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(size: str, batch: int, frames: int, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    model, image, length = make_model(size)
    inputs = inputs_for(batch, frames, image, length)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def infer_plain():
        with torch.inference_mode():
            plain_meanp(model.eval(), inputs)

    def infer_mode(mode):
        def fn():
            model.config.inference_mode = mode
            with torch.inference_mode():
                model.eval()(**inputs, return_loss=False)
        return fn

    def train_plain():
        model.train()
        text, video = plain_meanp(model, inputs)
        loss = contrastive_loss(text, video, model.backbone.logit_scale.exp())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def train_finsta():
        model.config.inference_mode = "fused"
        model.train()
        loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    variants = {
        "infer_plain": infer_plain,
        "infer_fused": infer_mode("fused"),
        "infer_distilled": infer_mode("distilled"),
        "train_plain": train_plain,
        "train_finsta": train_finsta,
    }
    for fn in variants.values():  # warm-up
        fn()
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            times[name].append(timed(fn))
    median = {name: statistics.median(values) for name, values in times.items()}
    host_params = sum(p.numel() for p in model.backbone.parameters())
    head_params = sum(p.numel() for p in model.graph_encoder.parameters())
    return {
        **{f"{name}_s": value for name, value in median.items()},
        "fused_inference_ratio": median["infer_fused"] / median["infer_plain"],
        "distilled_inference_ratio": median["infer_distilled"] / median["infer_plain"],
        "train_step_ratio": median["train_finsta"] / median["train_plain"],
        "extra_parameters_percent": 100 * head_params / host_params,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="tiny,vit-b-32")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, frames {args.frames}")
    header = f"{'size':<10} {'plain inf s':>11} {'fused/plain':>11} {'distilled/plain':>15} {'plain step s':>12} {'finsta/plain step':>17} {'+params %':>9}"
    print(header)
    for size in args.sizes.split(","):
        repeats = args.repeats if size == "tiny" else max(2, args.repeats // 2)
        r = run(size, args.batch, args.frames, repeats)
        print(
            f"{size:<10} {r['infer_plain_s']:>11.3f} {r['fused_inference_ratio']:>11.2f} "
            f"{r['distilled_inference_ratio']:>15.2f} {r['train_plain_s']:>12.3f} {r['train_step_ratio']:>17.2f} "
            f"{r['extra_parameters_percent']:>9.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
