"""Generative adapters: the one small interface between a video LLM host and Finsta's graph head.

Per host family, an adapter turns the host's video encoding into what Finsta needs:

* per-frame patch tokens on a row-major patch grid (for the latent or annotated DSG);
* the projected visual tokens exactly as they enter the LLM, ``[B, T', M, D]`` (``T'`` the host's
  temporal steps: frames for Video-LLaVA, 2-frame tubelets for Qwen2-VL), and the inverse: the
  host's own ``mm_encoder_outputs`` format for a (refined) copy of them;
* a ``[M, N]`` matrix saying which patches each visual token covers, so graph states can be spread
  over the tokens (and token states pooled per object track);
* the LLM's token states of a text alone (the caption's text scene graph never sees the video).

The adapter never owns parameters or the host: `FinstaForConditionalGeneration.backbone` stays the
plain `AutoModelForImageTextToText`. Adding a family (LLaVA-OneVision, LLaVA-NeXT-Video) means one
adapter class here and one entry in `GENERATIVE_ADAPTERS`; the model does not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.vision_utils import get_vision_window_index


@dataclass
class GenerativeVideoOutput:
    patch_tokens: torch.Tensor  # [B, T', N, Dv] row-major patch tokens (no class token) for the DSG
    grid_size: tuple[int, int]  # (rows, columns) of the patch grid, N = rows * columns
    visual_tokens: torch.Tensor  # [B, T', M, D] projected tokens as they enter the LLM, in prompt order


class GenerativeAdapter(nn.Module):
    """Interface every generative host family implements (see the module docstring)."""

    video_input_names: tuple[str, ...] = ("pixel_values_videos",)
    projector_module_names: tuple[str, ...] = ()
    """Module names (suffixes) of the host's vision-to-LLM projector, trained in full under LoRA."""

    def __init__(self, backbone_config):
        super().__init__()
        self.backbone_config = backbone_config

    @property
    def text_hidden_size(self) -> int:
        return self.backbone_config.text_config.hidden_size

    @property
    def vision_hidden_size(self) -> int:
        raise NotImplementedError

    @property
    def video_token_id(self) -> int:
        return self.backbone_config.video_token_id

    @property
    def frames_per_step(self) -> int:
        """Input frames per temporal step of the host's visual tokens (2 for Qwen2-VL tubelets)."""
        return 1

    def encode_video(self, backbone: nn.Module, video_inputs: dict[str, Optional[torch.Tensor]]) -> GenerativeVideoOutput:
        raise NotImplementedError

    def host_video_features(self, visual_tokens: torch.Tensor) -> BaseModelOutputWithPooling:
        """``[B, T', M, D]`` visual tokens in the host's ``mm_encoder_outputs["video"]`` format."""
        raise NotImplementedError

    def patch_to_token_matrix(self, grid_size: tuple[int, int], device=None) -> torch.Tensor:
        """``[M, N]``: row m averages the patches visual token m covers (rows sum to 1)."""
        raise NotImplementedError

    def select_videos(self, video_inputs: dict[str, Optional[torch.Tensor]], index: torch.Tensor) -> dict:
        """The video inputs of videos ``index`` (in that order, repeats allowed)."""
        raise NotImplementedError

    def text_states(
        self, backbone: nn.Module, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """Final-layer LLM states ``[B, L, D]`` of a text alone (no visual tokens): the caption's TSG side."""
        return backbone.model.language_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def check_prompt(self, input_ids: Optional[torch.Tensor], visual_tokens: torch.Tensor) -> None:
        """Clear errors when the prompt's video placeholders do not fit the video."""
        if input_ids is None:
            return
        placeholders = (input_ids == self.video_token_id).sum(-1)
        batch, steps, per_step = visual_tokens.shape[:3]
        num_frames = steps * self.frames_per_step
        if placeholders.shape[0] != batch:
            raise ValueError(f"input_ids has {placeholders.shape[0]} sequences but the video inputs hold {batch} videos")
        missing = (placeholders == 0).nonzero().flatten().tolist()
        if missing:
            raise ValueError(
                f"input_ids rows {missing} have no video placeholder token (video_token_id={self.video_token_id}) "
                "but video inputs were given: build the prompt with the processor, which expands the video token"
            )
        wrong = (placeholders != steps * per_step).nonzero().flatten().tolist()
        if wrong:
            raise ValueError(
                f"input_ids rows {wrong} have {placeholders[wrong[0]].item()} video placeholder tokens but the video "
                f"gives {steps * per_step} visual tokens ({num_frames} frames -> {steps} steps x {per_step} tokens); "
                "the prompt must be built for the same number of frames and frame size"
            )


class VideoLlavaAdapter(GenerativeAdapter):
    """Video-LLaVA (Lin et al. 2023): ``pixel_values_videos [B, T, C, H, W]``, a CLIP video tower per frame,
    the hidden state of ``vision_feature_layer`` (all tokens, class token included, as the host feeds the
    LLM ``T * (1 + N)`` tokens) through the two-layer projector. The DSG reads the same layer, class token
    dropped; each visual token covers its patch, the class token the whole frame."""

    projector_module_names = ("multi_modal_projector",)

    @property
    def _layers(self) -> list[int]:
        layer = self.backbone_config.vision_feature_layer
        return [layer] if isinstance(layer, int) else list(layer)

    @property
    def vision_hidden_size(self) -> int:
        return self.backbone_config.vision_config.hidden_size * len(self._layers)

    def encode_video(self, backbone, video_inputs):
        pixel_values = video_inputs.get("pixel_values_videos")
        if pixel_values is None or pixel_values.dim() != 5:
            raise ValueError(
                "Video-LLaVA takes pixel_values_videos [batch, frames, channels, height, width], got "
                f"{None if pixel_values is None else tuple(pixel_values.shape)}"
            )
        batch, frames = pixel_values.shape[:2]
        outputs = backbone.model.get_video_features(
            pixel_values_videos=pixel_values, return_dict=True, output_hidden_states=True
        )
        selected = torch.cat([outputs.hidden_states[layer] for layer in self._layers], dim=-1)
        vision = self.backbone_config.vision_config
        rows = vision.image_size // vision.patch_size
        patches = selected[:, 1:]
        if patches.shape[1] != rows * rows:
            raise ValueError(f"Video-LLaVA tower gave {patches.shape[1]} patch tokens, expected {rows}x{rows}")
        visual = outputs.pooler_output
        return GenerativeVideoOutput(
            patch_tokens=patches.reshape(batch, frames, rows * rows, -1),
            grid_size=(rows, rows),
            visual_tokens=visual.reshape(batch, frames, visual.shape[1], visual.shape[2]),
        )

    def host_video_features(self, visual_tokens):
        return BaseModelOutputWithPooling(pooler_output=visual_tokens.flatten(0, 1))

    def patch_to_token_matrix(self, grid_size, device=None):
        patches = grid_size[0] * grid_size[1]
        matrix = torch.zeros(1 + patches, patches, device=device)
        matrix[0] = 1.0 / patches
        matrix[1:] = torch.eye(patches, device=device)
        return matrix

    def select_videos(self, video_inputs, index):
        return {"pixel_values_videos": video_inputs["pixel_values_videos"][index]}


class Qwen2VLAdapter(GenerativeAdapter):
    """Qwen2-VL (and Qwen2.5-VL): flat patches ``pixel_values_videos [sum t*h*w, C*2*p*p]`` with
    ``video_grid_thw [B, 3]``; each patch is a 2-frame tubelet, so ``T' = frames / 2``.

    The tower's patch states come merge-block-major (``t, h/m, w/m, m, m``, the processor's layout)
    and, in Qwen2.5-VL, additionally permuted window by window (in units of merge blocks). They are
    restored to ``[B, T', h*w, D]`` row-major for the DSG; the merged visual tokens (the LLM's, in
    ``t, h/m, w/m`` order) each cover one ``m x m`` block. `merge_restored_patches` inverts the
    restoration so a test can check that the restored tokens re-merge into the tower's own output.
    """

    video_input_names = ("pixel_values_videos", "video_grid_thw")
    projector_module_names = ("merger",)

    @property
    def _windowed(self) -> bool:
        return self.backbone_config.model_type == "qwen2_5_vl"

    @property
    def vision_hidden_size(self) -> int:
        vision = self.backbone_config.vision_config
        return vision.hidden_size if self._windowed else vision.embed_dim

    @property
    def merge_size(self) -> int:
        return self.backbone_config.vision_config.spatial_merge_size

    @property
    def frames_per_step(self) -> int:
        return self.backbone_config.vision_config.temporal_patch_size

    def _grid(self, grid_thw: Optional[torch.Tensor]) -> tuple[int, int, int]:
        if grid_thw is None or grid_thw.dim() != 2 or grid_thw.shape[1] != 3:
            raise ValueError(
                "Qwen2-VL takes flat pixel_values_videos with video_grid_thw [videos, 3] (t, h, w), got "
                f"video_grid_thw={None if grid_thw is None else tuple(grid_thw.shape)}"
            )
        grids = {tuple(row) for row in grid_thw.tolist()}
        if len(grids) != 1:
            raise ValueError(
                f"Finsta needs every video of a batch on one grid (same frame count and size), got grids {sorted(grids)}"
            )
        t, h, w = grids.pop()
        if h % self.merge_size or w % self.merge_size:
            raise ValueError(f"video_grid_thw (h, w) = ({h}, {w}) is not a multiple of spatial_merge_size={self.merge_size}")
        return t, h, w

    def _window_index(self, grid_thw: torch.Tensor) -> torch.Tensor:
        vision = self.backbone_config.vision_config
        index, _ = get_vision_window_index(grid_thw, self.merge_size, vision.window_size, vision.patch_size)
        return index.to(grid_thw.device)

    def restore_patch_order(self, tower_states: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
        """Tower patch states as they come out ``[sum t*h*w, D]`` -> ``[B, t, h*w, D]`` row-major per step."""
        t, h, w = self._grid(grid_thw)
        m = self.merge_size
        blocks = tower_states.reshape(-1, m * m, tower_states.shape[-1])
        if self._windowed:  # the tower ran on blocks[window_index]; undo it
            blocks = blocks[torch.argsort(self._window_index(grid_thw))]
        videos = grid_thw.shape[0]
        grid = blocks.reshape(videos, t, h // m, w // m, m, m, -1).permute(0, 1, 2, 4, 3, 5, 6)
        return grid.reshape(videos, t, h * w, -1)

    def merge_restored_patches(self, patches: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
        """Inverse of `restore_patch_order` up to the window permutation: ``[B, t, h*w, D]`` -> the
        processor's merge-block-major ``[sum t*h*w, D]``, which the tower's merger takes block by block."""
        t, h, w = self._grid(grid_thw)
        m = self.merge_size
        videos = patches.shape[0]
        grid = patches.reshape(videos, t, h // m, m, w // m, m, -1).permute(0, 1, 2, 4, 3, 5, 6)
        return grid.reshape(-1, patches.shape[-1])

    def encode_video(self, backbone, video_inputs):
        pixel_values = video_inputs.get("pixel_values_videos")
        grid_thw = video_inputs.get("video_grid_thw")
        if pixel_values is None or pixel_values.dim() != 2:
            raise ValueError(
                "Qwen2-VL takes flat pixel_values_videos [patches, channels * temporal_patch_size * patch_size**2] "
                "(its processor's output, or FinstaGenerationProcessor's), got "
                f"{None if pixel_values is None else tuple(pixel_values.shape)}"
            )
        t, h, w = self._grid(grid_thw)
        if pixel_values.shape[0] != grid_thw.shape[0] * t * h * w:
            raise ValueError(
                f"pixel_values_videos has {pixel_values.shape[0]} patches but video_grid_thw describes "
                f"{grid_thw.shape[0]} x {t * h * w}"
            )
        outputs = backbone.model.get_video_features(pixel_values, grid_thw, return_dict=True)
        videos = grid_thw.shape[0]
        merged = torch.stack(list(outputs.pooler_output), dim=0)
        m = self.merge_size
        return GenerativeVideoOutput(
            patch_tokens=self.restore_patch_order(outputs.last_hidden_state, grid_thw),
            grid_size=(h, w),
            visual_tokens=merged.reshape(videos, t, (h // m) * (w // m), merged.shape[-1]),
        )

    def host_video_features(self, visual_tokens):
        return BaseModelOutputWithPooling(pooler_output=tuple(video.reshape(-1, video.shape[-1]) for video in visual_tokens))

    def patch_to_token_matrix(self, grid_size, device=None):
        rows, columns = grid_size
        m = self.merge_size
        patch_rows = torch.arange(rows, device=device).view(-1, 1).expand(rows, columns).reshape(-1)
        patch_columns = torch.arange(columns, device=device).view(1, -1).expand(rows, columns).reshape(-1)
        token = (patch_rows // m) * (columns // m) + patch_columns // m  # merged token of each patch
        return nn.functional.one_hot(token, (rows // m) * (columns // m)).t().float() / (m * m)

    def select_videos(self, video_inputs, index):
        grid_thw = video_inputs["video_grid_thw"]
        t, h, w = self._grid(grid_thw)
        per_video = video_inputs["pixel_values_videos"].reshape(grid_thw.shape[0], t * h * w, -1)
        selected = {"pixel_values_videos": per_video[index].flatten(0, 1), "video_grid_thw": grid_thw[index]}
        return selected


GENERATIVE_ADAPTERS: dict[str, type[GenerativeAdapter]] = {
    "video_llava": VideoLlavaAdapter,
    "qwen2_vl": Qwen2VLAdapter,
    "qwen2_5_vl": Qwen2VLAdapter,
}


def build_generative_adapter(backbone_config) -> GenerativeAdapter:
    try:
        adapter_class = GENERATIVE_ADAPTERS[backbone_config.model_type]
    except KeyError:
        raise ValueError(
            f"no generative adapter for model_type {backbone_config.model_type!r}; known: {sorted(GENERATIVE_ADAPTERS)}"
        ) from None
    return adapter_class(backbone_config)


__all__ = [
    "GENERATIVE_ADAPTERS",
    "GenerativeAdapter",
    "GenerativeVideoOutput",
    "Qwen2VLAdapter",
    "VideoLlavaAdapter",
    "build_generative_adapter",
]
