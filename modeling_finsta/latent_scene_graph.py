"""Dynamic scene graphs from patch tokens: the latent builder and box-based pooling for annotated graphs.

[ours] The latent DSG needs no detector, tracker or extra weights: per frame, patch tokens are
clustered into object slots; the slots of frame t start from the slots of frame t-1, so slot index
is the track. Plain slot attention collapses on small patch grids (every slot spreads over the
whole image and its centroid sits on the image centre). Three choices keep slots on objects:

* features are centred on the frame's mean token, so a uniform background is near the origin and
  objects stand out;
* the first frame is seeded by farthest-point sampling (the first seed is the most salient patch),
  which puts a seed on every distinct region before any clustering happens;
* patch coordinates are appended to the features (``latent_position_weight``), keeping each slot
  spatially compact.

The assignment is computed without gradient (it is a discrete structure); node features are pooled
from the patch tokens with it, so gradients still reach the backbone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def patch_centres(rows: int, columns: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised (x, y) centres of a patch grid, row-major: ``[rows * columns, 2]``."""
    ys = (torch.arange(rows, device=device, dtype=dtype) + 0.5) / rows
    xs = (torch.arange(columns, device=device, dtype=dtype) + 0.5) / columns
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=-1)


def boxes_from_assignment(assignment: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Boxes ``[..., S, 4]`` (x1, y1, x2, y2) from soft masks ``[..., S, N]`` over patch ``centres [N, 2]``.

    Centroid plus/minus sqrt(3) standard deviations (the half-width of a uniform blob), widened by half
    a patch so that a one-patch slot still has area, clipped to the image.
    """
    mass = assignment.sum(-1, keepdim=True).clamp(min=1e-6)
    mean = assignment @ centres / mass
    variance = assignment @ (centres**2) / mass - mean**2
    patch_half = (centres[:, 0].min(), centres[:, 1].min())
    half = torch.sqrt(variance.clamp(min=0)) * (3**0.5)
    half = half + torch.stack(patch_half).to(half)
    return torch.cat([mean - half, mean + half], dim=-1).clamp(0, 1)


def box_patch_weights(boxes: torch.Tensor, rows: int, columns: int) -> torch.Tensor:
    """Fraction of each patch cell covered by each box: ``[..., S, 4] -> [..., S, rows * columns]``.

    Used to RoI-pool annotated objects from the patch grid. A box smaller than a cell still gets the
    cell that contains its centre, so no annotated object ends up with an empty feature.
    """
    device, dtype = boxes.device, boxes.dtype
    x_edges = torch.arange(columns + 1, device=device, dtype=dtype) / columns
    y_edges = torch.arange(rows + 1, device=device, dtype=dtype) / rows
    x1, y1, x2, y2 = boxes.unbind(-1)
    overlap_x = (torch.minimum(x2.unsqueeze(-1), x_edges[1:]) - torch.maximum(x1.unsqueeze(-1), x_edges[:-1])).clamp(min=0)
    overlap_y = (torch.minimum(y2.unsqueeze(-1), y_edges[1:]) - torch.maximum(y1.unsqueeze(-1), y_edges[:-1])).clamp(min=0)
    coverage = (overlap_y.unsqueeze(-1) * overlap_x.unsqueeze(-2)) * (rows * columns)  # [..., S, rows, cols]
    centre_x = ((x1 + x2) / 2 * columns).long().clamp(0, columns - 1)
    centre_y = ((y1 + y2) / 2 * rows).long().clamp(0, rows - 1)
    centre_cell = F.one_hot(centre_y * columns + centre_x, rows * columns).to(dtype)
    return torch.maximum(coverage.flatten(-2), centre_cell)


def pool_by_weights(tokens: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean of ``tokens [..., N, D]`` under ``weights [..., S, N]`` -> ``[..., S, D]``."""
    weights = weights.to(tokens.dtype)
    return weights @ tokens / weights.sum(-1, keepdim=True).clamp(min=1e-6)


class LatentSceneGraphBuilder(torch.nn.Module):
    """Object slots per frame from patch tokens, tracked by initialising frame t from frame t-1.

    Parameter-free: it reads the host's patch tokens and returns assignment masks, boxes and
    presence, so it works for any ViT backbone and never changes what the checkpoint holds.
    """

    def __init__(self, num_slots: int, iterations: int, temperature: float, position_weight: float):
        super().__init__()
        self.num_slots = num_slots
        self.iterations = iterations
        self.temperature = temperature
        self.position_weight = position_weight

    def clustering_features(self, patch_tokens: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
        """Centred, normalised token features with scaled patch coordinates appended: ``[B, T, N, D + 2]``."""
        tokens = patch_tokens.float()
        centred = tokens - tokens.mean(dim=-2, keepdim=True)
        # Scale by the frame's typical token deviation so a flat background maps near zero.
        scale = centred.norm(dim=-1).mean(dim=-1, keepdim=True).clamp(min=1e-6).unsqueeze(-1)
        features = centred / scale
        positions = patch_centres(*grid_size, device=tokens.device).expand(*tokens.shape[:2], -1, -1)
        return torch.cat([features, self.position_weight * positions], dim=-1)

    def farthest_point_seeds(self, features: torch.Tensor) -> torch.Tensor:
        """Seeds ``[B, S, D]`` for the first frame's features ``[B, N, D]``, most salient patch first."""
        batch, patches, _ = features.shape
        saliency = features[..., :-2].norm(dim=-1)
        chosen = [saliency.argmax(dim=-1)]
        distance = torch.full((batch, patches), float("inf"), device=features.device)
        rows = torch.arange(batch, device=features.device)
        for _ in range(1, min(self.num_slots, patches)):
            latest = features[rows, chosen[-1]]
            distance = torch.minimum(distance, ((features - latest.unsqueeze(1)) ** 2).sum(-1))
            chosen.append(distance.argmax(dim=-1))
        while len(chosen) < self.num_slots:  # more slots than patches: repeat the most salient one
            chosen.append(chosen[0])
        return features[rows.unsqueeze(1), torch.stack(chosen, dim=1)]

    def assign(self, features: torch.Tensor, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """k-means from ``centres [B, S, D]`` on ``features [B, N, D]``; returns (assignment [B,S,N], centres).

        ``temperature == 0``: hard (Lloyd) assignments, each patch to its nearest centre. The slots are
        then piecewise constant in the patch tokens, so tiny numerical differences (attention kernels,
        batch size, 1e-6 input noise) leave the graph unchanged instead of being amplified frame after
        frame, as soft assignments with a sharp temperature do. ``temperature > 0``: soft k-means.
        """
        assignment = None
        for _ in range(self.iterations):
            distances = torch.cdist(features, centres) ** 2  # [B, N, S]
            if self.temperature == 0:
                assignment = F.one_hot(distances.argmin(dim=-1), centres.shape[1]).to(features.dtype).transpose(1, 2)
            else:
                assignment = torch.softmax(-distances / self.temperature, dim=-1).transpose(1, 2)
            mass = assignment.sum(-1, keepdim=True)
            updated = assignment @ features / mass.clamp(min=1e-6)
            centres = torch.where(mass > 1e-3, updated, centres)
        return assignment, centres

    @torch.no_grad()
    def forward(self, patch_tokens: torch.Tensor, grid_size: tuple[int, int], video_mask=None) -> dict[str, torch.Tensor]:
        """``patch_tokens [B, T, N, D]`` -> dict of ``assignment [B,T,S,N]``, ``boxes [B,T,S,4]``, ``node_mask [B,T,S]``."""
        features = self.clustering_features(patch_tokens, grid_size)
        batch, frames, patches, _ = features.shape
        centres = self.farthest_point_seeds(features[:, 0])
        assignments = []
        for frame in range(frames):
            assignment, centres = self.assign(features[:, frame], centres)
            assignments.append(assignment)
        assignment = torch.stack(assignments, dim=1)
        grid = patch_centres(*grid_size, device=features.device)
        boxes = boxes_from_assignment(assignment, grid)
        node_mask = assignment.sum(-1) >= 0.5  # at least half a patch
        if video_mask is not None:
            node_mask = node_mask & video_mask.bool().unsqueeze(-1)
        return {"assignment": assignment, "boxes": boxes, "node_mask": node_mask}
