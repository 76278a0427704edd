"""Finsta for transformers: scene-graph alignment heads around video-language backbones."""

from .scene_graphs import (
    TEXT_EDGE_TYPES,
    TEXT_NODE_TYPES,
    ParsedTextSceneGraph,
    ParsedVideoSceneGraph,
    SceneGraphNode,
    TextSceneGraphBatch,
    VideoKeyframe,
    VideoObject,
    VideoRelation,
    VideoSceneGraphBatch,
)
