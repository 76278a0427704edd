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
from .modeling_finsta import (
    FinstaForVideoClassification,
    FinstaModel,
    FinstaOutput,
    FinstaPreTrainedModel,
    FinstaVideoClassifierOutput,
)
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
from .zero_shot import (
    DEFAULT_TEMPLATES,
    ZERO_SHOT_VIDEO_CLASSIFICATION,
    ClassPromptEmbeddings,
    class_scores,
    encode_class_prompts,
    top_k_accuracy,
    zero_shot_pipeline,
)
from .pipeline_finsta import FinstaZeroShotVideoClassificationPipeline


def _register_auto_classes() -> None:
    """Make the Auto classes resolve ``finsta`` (AutoModel, AutoModelForVideoClassification, AutoProcessor) and
    ``finsta_generation`` (AutoModelForImageTextToText, AutoProcessor) once the package is imported, and register
    the ``zero-shot-video-classification`` pipeline task."""
    from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoModelForVideoClassification, AutoProcessor
    from transformers.pipelines import PIPELINE_REGISTRY

    try:
        AutoConfig.register(FinstaConfig.model_type, FinstaConfig)
        AutoModel.register(FinstaConfig, FinstaModel)
        AutoProcessor.register(FinstaConfig, FinstaProcessor)
    except ValueError:  # already registered (e.g. the module was reloaded)
        pass
    try:
        AutoModelForVideoClassification.register(FinstaConfig, FinstaForVideoClassification)
    except ValueError:
        pass
    if ZERO_SHOT_VIDEO_CLASSIFICATION not in PIPELINE_REGISTRY.get_supported_tasks():
        PIPELINE_REGISTRY.register_pipeline(
            ZERO_SHOT_VIDEO_CLASSIFICATION,
            pipeline_class=FinstaZeroShotVideoClassificationPipeline,
            pt_model=AutoModel,
            type="multimodal",
        )
    try:
        AutoConfig.register(FinstaGenerationConfig.model_type, FinstaGenerationConfig)
        AutoModelForImageTextToText.register(FinstaGenerationConfig, FinstaForConditionalGeneration)
        AutoProcessor.register(FinstaGenerationConfig, FinstaGenerationProcessor)
    except ValueError:
        pass


_register_auto_classes()
