"""Does sharing the host's upper layers carry the graph into the host alone? A probe for issue 9.

The generative hosts gain in distilled mode (README: Qwen2-VL role +20) because their fused and plain
passes share the LLM: what the fused pass learns lands in weights the plain pass also uses. The
dual-encoder Finsta sums its graph embedding onto the host's at the very end, so nothing downstream of
the graph is shared. This probe copies the generative arrangement into CLIP4Clip [ours]:

* the fused pass runs the host's own towers once more with the graph encoder's node states added, as a
  zero-initialised residual, after tower layer ``--layer``: each patch gets the states of the DSG nodes
  whose region covers it, each class token its frame's mean node state; each caption token the states of
  the TSG nodes whose span covers it, the end token the caption's mean node state;
* the residual is scaled by the RMS of the hidden states at that layer, so a trained host's grown
  residual stream does not swamp it (without the scaling the fused pass stayed at the host's binding);
* the fused embeddings are the host's own pooled outputs of that pass, so every post-training loss on
  them (the fused InfoNCE, the teacher of the rankings distillation) trains host layers that the host
  alone also runs. Distilled mode is the plain host, unchanged.

It is a probe (a subclass here), not a `FinstaConfig` switch, because it did not make the host better:
see the README's post-training section for the measured table. It runs the protocol's stage 1 and 2
(latent DSG, the default transfer settings, host alone and fused) beside the equal-budget control:

    python benchmarks/shared_reader_probe.py --hosts meanP seqTransf --seeds 0 1 2 --output probe.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPooling

from modeling_finsta.demo.comparison import aggregate, format_table
from modeling_finsta.demo.post_training import PROTOCOL, PROTOCOL_METRICS, QUICK, TRANSFER, TRANSFER_TRAINING
from modeling_finsta.demo.post_training import host_rows, post_train, prepare_protocol_data, stage0_host
from modeling_finsta.demo.variants import PLAIN_HOST
from modeling_finsta.graph_encoder import TextGraphEncoding, VideoGraphEncoding
from modeling_finsta.modeling_finsta import FinstaModel, HardNegativeCaptions
from modeling_finsta.scene_graphs import TextSceneGraphBatch, VideoSceneGraphBatch


class GraphInjection(nn.Module):
    """Node states -> residuals for caption tokens, the end token, patches and class tokens (all zero at start)."""

    def __init__(self, graph_hidden: int, text_hidden: int, vision_hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(graph_hidden)
        self.text_tokens = nn.Linear(graph_hidden, text_hidden)
        self.text_pooled = nn.Linear(graph_hidden, text_hidden)
        self.video_patches = nn.Linear(graph_hidden, vision_hidden)
        self.video_pooled = nn.Linear(graph_hidden, vision_hidden)
        for linear in (self.text_tokens, self.text_pooled, self.video_patches, self.video_pooled):
            linear.zero_init = True

    def text_residual(self, encoding: TextGraphEncoding, node_token_mask: torch.Tensor, end_positions: torch.Tensor) -> torch.Tensor:
        """``[B, L, text_hidden]``: each token the mean residual of the nodes covering it, the end token the caption's."""
        states = self.norm(encoding.node_states) * encoding.node_mask.unsqueeze(-1)
        covers = (node_token_mask * encoding.node_mask.unsqueeze(-1)).to(states.dtype)  # [B, N, L]
        per_token = covers.transpose(1, 2) @ self.text_tokens(states) / covers.sum(1).clamp(min=1).unsqueeze(-1)
        pooled = self.text_pooled(states.sum(1) / encoding.node_mask.sum(-1, keepdim=True).clamp(min=1))
        at_end = nn.functional.one_hot(end_positions, covers.shape[-1]).to(states.dtype).unsqueeze(-1) * pooled.unsqueeze(1)
        return (per_token + at_end) * encoding.has_graph.view(-1, 1, 1).to(states.dtype)

    def video_residual(self, encoding: VideoGraphEncoding, patch_weights: torch.Tensor) -> torch.Tensor:
        """``[B * T, 1 + N, vision_hidden]``: each patch the residuals of its nodes (by pooling weight), the class token the frame's mean."""
        states = self.norm(encoding.node_states) * encoding.node_mask.unsqueeze(-1)  # [B, T, S, H]
        weights = patch_weights.to(states.dtype) * encoding.node_mask.unsqueeze(-1)  # [B, T, S, N]
        share = weights / weights.sum(2, keepdim=True).clamp(min=1e-6)
        per_patch = share.transpose(2, 3) @ self.video_patches(states)  # [B, T, N, D]
        pooled = self.video_pooled(states.sum(2) / encoding.node_mask.sum(-1, keepdim=True).clamp(min=1))  # [B, T, D]
        return torch.cat([pooled.unsqueeze(2), per_patch], 2).flatten(0, 1)


class SharedReaderFinstaModel(FinstaModel):
    """`FinstaModel` whose fused embeddings come from the host's towers re-run with the graph injected (see above)."""

    def __init__(self, config):
        super().__init__(config)
        self.injection = GraphInjection(config.graph_hidden_size, self.host_adapter.text_hidden_size, self.host_adapter.vision_hidden_size)
        self.post_init()

    @classmethod
    def from_pretrained(cls, path, *args, graph_injection_layer: int = 0, **kwargs):
        model = super().from_pretrained(path, *args, **kwargs)
        model.graph_injection_layer = graph_injection_layer
        return model

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if getattr(module, "zero_init", False):
            module.weight.zero_()
            module.bias.zero_()

    # --------------------------------------------------------------------------- the injected pass
    def _injecting(self) -> bool:
        return self.config.inference_mode == "fused"

    def _with_residual(self, tower: nn.Module, residual: torch.Tensor, run: Callable[[], Any]) -> Any:
        """``run()`` with ``residual`` (times the hidden states' RMS) added after layer ``graph_injection_layer``."""

        def add(module, args, output):
            scale = output.pow(2).mean(-1, keepdim=True).sqrt().detach()
            return output + residual.to(output.dtype) * scale

        handle = tower.encoder.layers[getattr(self, "graph_injection_layer", 0)].register_forward_hook(add)
        try:
            return run()
        finally:
            handle.remove()

    def _injected_text(self, input_ids, attention_mask, encoding: TextGraphEncoding, node_token_mask) -> torch.Tensor:
        tower = self.backbone.text_model
        end = (input_ids == tower.eos_token_id).int().argmax(-1) if tower.eos_token_id != 2 else input_ids.argmax(-1)
        residual = self.injection.text_residual(encoding, node_token_mask, end)
        host = self._with_residual(tower, residual, lambda: self.host_adapter.encode_text(self.backbone, input_ids, attention_mask))
        return host.text_embeds

    def _injected_video(self, pixel_values, video_mask, encoding: VideoGraphEncoding, patch_weights) -> torch.Tensor:
        residual = self.injection.video_residual(encoding, patch_weights)
        run = lambda: self.host_adapter.encode_video(self.backbone, pixel_values, video_mask)  # noqa: E731
        return self._with_residual(self.backbone.vision_model, residual, run).video_embeds

    def _encode_video_graph(self, host, video_mask, video_graph):
        inputs, weights = self.graph_encoder.build_video_graph(self._host_features(host.patch_tokens), host.grid_size, video_mask, video_graph)
        self._patch_weights = weights  # read by the injected pass right after
        return inputs, self.graph_encoder.encode_video_graph(inputs)

    def _encode(self, input_ids, attention_mask, pixel_values, video_mask, text_graph, video_graph, *, with_graphs, tower_kwargs, video_inputs=None):
        encoded = super()._encode(
            input_ids, attention_mask, pixel_values, video_mask, text_graph, video_graph,
            with_graphs=with_graphs, tower_kwargs=tower_kwargs, video_inputs=video_inputs,
        )  # fmt: skip
        if with_graphs and self._injecting() and encoded.text_graph is not None:
            encoded.text_embeds = self._injected_text(input_ids, attention_mask, encoded.text_graph, text_graph.node_token_mask)
            encoded.video_embeds = self._injected_video(pixel_values, video_mask, encoded.video_graph, self._patch_weights)
        return encoded

    def _encode_negatives(self, input_ids, attention_mask, text_scene_graph, mask, *, with_graphs):
        negatives = super()._encode_negatives(input_ids, attention_mask, text_scene_graph, mask, with_graphs=with_graphs)
        if not (self._injecting() and negatives.graph is not None):
            return negatives
        token_mask = TextSceneGraphBatch.from_value(text_scene_graph).node_token_mask
        flat = lambda x: None if x is None else x.reshape(-1, x.shape[-1])  # noqa: E731
        embeds = self._injected_text(flat(input_ids), flat(attention_mask), negatives.graph, token_mask.reshape(-1, *token_mask.shape[-2:]))
        return HardNegativeCaptions(negatives.host_embeds, embeds.view_as(negatives.host_embeds), negatives.graph, negatives.mask)

    # The encoders run the host once, the graph once and the injected pass once (the pooled output is what
    # the evaluation reads; the tower outputs are the plain pass's).
    def get_text_features(self, input_ids, attention_mask=None, text_scene_graph=None, **kwargs):
        if not (self._injecting() and text_scene_graph is not None):
            return super().get_text_features(input_ids, attention_mask, text_scene_graph, **kwargs)
        graph = TextSceneGraphBatch.from_value(text_scene_graph)
        host = self.host_adapter.encode_text(self.backbone, input_ids, attention_mask)
        encoding = self._encode_text_graph(host, input_ids, attention_mask, graph)
        embeds = self._injected_text(input_ids, attention_mask, encoding, graph.node_token_mask)
        return BaseModelOutputWithPooling(last_hidden_state=host.token_states, pooler_output=embeds)

    def get_video_features(self, pixel_values, video_mask=None, video_scene_graph=None, **kwargs):
        if not self._injecting():
            return super().get_video_features(pixel_values, video_mask, video_scene_graph, **kwargs)
        host = self.host_adapter.encode_video(self.backbone, pixel_values, video_mask)
        _, encoding = self._encode_video_graph(host, video_mask, VideoSceneGraphBatch.from_value(video_scene_graph))
        embeds = self._injected_video(pixel_values, video_mask, encoding, self._patch_weights)
        return BaseModelOutputWithPooling(last_hidden_state=host.tower_output.last_hidden_state, pooler_output=embeds)


def run(hosts, seeds, layer: int, quick: bool, cache_dir: Path, output: Optional[Path]) -> dict[str, Any]:
    started = time.time()
    budget = replace(QUICK if quick else PROTOCOL, seeds=tuple(seeds))
    protocol_data = prepare_protocol_data(budget)
    latent = protocol_data.post.without("video_scene_graph", "grounding")
    runs = Path(cache_dir) / "probe-runs"
    per_seed: dict[str, dict] = {}
    for seed in seeds:
        rows: dict[str, dict] = {}
        for host in hosts:
            stage0 = stage0_host(host, budget, protocol_data, Path(cache_dir), progress=False)
            control = post_train(f"{host}-control-seed{seed}", stage0, latent, protocol_data, budget, seed, runs, dict(PLAIN_HOST), {}, False)
            rows[f"{host} control"] = host_rows(control, protocol_data, "latent", fused=False)["distilled"]
            probe = post_train(
                f"{host}-shared-reader-seed{seed}", stage0, latent, protocol_data, budget, seed, runs,
                {**TRANSFER, "graph_injection_layer": layer}, dict(TRANSFER_TRAINING), False, model_class=SharedReaderFinstaModel,
            )  # fmt: skip
            results = host_rows(probe, protocol_data, "latent", fused=True)
            rows[f"{host} shared reader, host alone"] = results["distilled"]
            rows[f"{host} shared reader, fused"] = results["fused"]
        per_seed[str(seed)] = {"test": rows}
        if output:
            output.write_text(json.dumps({"per_seed": per_seed, "layer": layer, "seconds": round(time.time() - started)}, indent=1))
    table = aggregate(per_seed)["test"]
    print(f"\nshared-reader probe (latent DSG, injection after tower layer {layer}), {len(seeds)} seed(s):")
    print(format_table(table, len(seeds), PROTOCOL_METRICS))
    report = {"table": table, "per_seed": per_seed, "layer": layer, "seconds": round(time.time() - started)}
    if output:
        output.write_text(json.dumps(report, indent=1))
    return report


def main(argv=None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", nargs="+", default=["meanP", "seqTransf"], choices=["meanP", "seqTransf"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--layer", type=int, default=0, help="tower layer after which the graph is injected (0: the first)")
    parser.add_argument("--quick", action="store_true", help="the protocol's --quick budget (a smoke run)")
    parser.add_argument("--cache-dir", default="runs/protocol/stage0-cache", help="stage-0 hosts, shared with finsta-demo")
    parser.add_argument("--output", type=Path, default=None, help="results JSON")
    args = parser.parse_args(argv)
    return run(args.hosts, args.seeds, args.layer, args.quick, Path(args.cache_dir), args.output)


if __name__ == "__main__":
    main()
