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
from .configuration_finsta import ABLATION_SWITCHES, FinstaConfig
from .modeling_finsta import FinstaModel, FinstaOutput, FinstaPreTrainedModel
from .configuration_finsta_generation import GENERATIVE_BACKBONES, FinstaGenerationConfig
from .modeling_finsta_generation import (
    GENERATIVE_LOSS_COMPONENTS,
    FinstaForConditionalGeneration,
    FinstaGenerationOutput,
    FinstaGenerationPreTrainedModel,
)
from .text_scene_graph_parser import TextSceneGraphParser
from .processing_finsta import FinstaBatch, FinstaDataCollator, FinstaProcessor
from .processing_finsta_generation import FinstaGenerationProcessor
from .video_io import VideoDecodingError, VideoPreprocessor, load_video, preprocessor_for_backbone
from .video_scene_graph_io import VideoSceneGraphError, read_video_scene_graph, write_video_scene_graph


def _register_auto_classes() -> None:
    """Make `AutoConfig` / `AutoModel` resolve `model_type="finsta"` once the package is imported."""
    from transformers import AutoConfig, AutoModel, AutoProcessor

    try:
        AutoConfig.register(FinstaConfig.model_type, FinstaConfig)
        AutoModel.register(FinstaConfig, FinstaModel)
        AutoProcessor.register(FinstaConfig, FinstaProcessor)
    except ValueError:  # already registered (e.g. the module was reloaded)
        pass
    from transformers import AutoModelForImageTextToText

    try:
        AutoConfig.register(FinstaGenerationConfig.model_type, FinstaGenerationConfig)
        AutoModelForImageTextToText.register(FinstaGenerationConfig, FinstaForConditionalGeneration)
        AutoProcessor.register(FinstaGenerationConfig, FinstaGenerationProcessor)
    except ValueError:
        pass


_register_auto_classes()
