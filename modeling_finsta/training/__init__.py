"""Training Finsta models with `transformers.Trainer`, driven by recipe files (tooling: never travels
with a checkpoint).

A recipe (``configuration/recipes/NAME.yaml``, schema in ``recipes.py``) says which model to build (a
tiny CLIP from scratch, a CLIP / X-CLIP checkpoint, or an existing Finsta folder), which data to
train on (Finsta-Synth in memory, or MSR-VTT / MSVD / DiDeMo decoded lazily from a local folder) and
how to optimise. `train` (``run.py``) runs it and leaves a Hub-ready folder (safetensors, config,
remote code, processor, ``training_summary.json``). The same code runs unchanged under
``accelerate launch``: the contrastive loss gathers embeddings across processes with gradient (see
``modeling_finsta/losses.py``).

Checkpoints are written atomically (``trainer.py``): each ``checkpoint-N`` is written into a hidden
staging folder (``.incomplete-checkpoint-N/``) and renamed into place only when every process has
finished writing it, so a run killed while saving never leaves a ``checkpoint-N`` that ``--resume``
would pick up half-written (the stock Trainer writes straight into ``checkpoint-N`` and resumes from
the highest-numbered folder whatever its state).

Also here: processed training examples and hard negatives (``examples.py``), the closed-vocabulary
word tokenizer (``word_tokenizer.py``), examples for classification and K-negative / multiple-choice
training (``tasks.py``), LoRA on the backbone (``peft_finsta.py``) and the one builder
of the tiny random CLIP (``tiny_clip.py``).

Command line (``cli.py``)::

    finsta-train --recipe synthetic-tiny --output-dir runs/tiny [--resume] [--set training.max_steps=50]
    accelerate launch --config_file configuration/accelerate/ddp.yaml -m modeling_finsta.training --recipe ...
"""

from .recipes import (
    DATA_SOURCES,
    DSG_SOURCES,
    RECIPES_FOLDER,
    TINY_BACKBONE,
    DataSettings,
    LoraSettings,
    ModelSettings,
    RecipeError,
    TinyBackboneSettings,
    TrainingRecipe,
    TrainingSettings,
    apply_overrides,
    load_recipe,
)
from .trainer import STAGING_PREFIX, FinstaTrainer, FreezeHostCallback, checkpoint_folders, last_complete_checkpoint, rotate_checkpoints
from .tiny_clip import tiny_clip_config
from .word_tokenizer import build_word_tokenizer, caption_words
from .examples import (
    FinstaExampleDataset,
    encode_examples,
    finsta_synth_examples,
    finsta_synth_hard_negatives,
    finsta_synth_tokenizer,
    with_text_graphs,
)
from .peft_finsta import (
    DEFAULT_LORA_PROJECTIONS,
    backbone_lora_target_regex,
    finsta_lora_config,
    finsta_modules_to_save,
    get_finsta_peft_model,
)
from .run import (
    TrainingDivergedError,
    checkpoint_step,
    mean_logged_loss,
    SUMMARY_FILE,
    LazyRetrievalDataset,
    TrainingResult,
    build_datasets,
    build_model_and_processor,
    train,
    training_arguments,
)
from .cli import main
from .tasks import classification_examples, finsta_synth_k_negative_examples, k_negative_examples, multiple_choice_examples
from .tiny_video_llm import TINY_VIDEO_LLM_FAMILIES, VIDEO_TOKEN, tiny_video_llm_config, video_llm_tokenizer
from .generative import GenerativeCollator, GenerativeExamples, generative_training_arguments, synth_examples, train_generative
from .generative_peft import LLM_LORA_PROJECTIONS, generative_modules_to_save, get_generative_peft_model, llm_lora_target_regex
from .generative_recipes import GENERATIVE_DATA_SOURCES, TINY_HOSTS, GenerativeRecipe, build_generative_setup, load_generative_recipe, run_generative_recipe

__all__ = [
    "TINY_VIDEO_LLM_FAMILIES",
    "VIDEO_TOKEN",
    "tiny_video_llm_config",
    "video_llm_tokenizer",
    "GenerativeCollator",
    "GenerativeExamples",
    "generative_training_arguments",
    "synth_examples",
    "train_generative",
    "LLM_LORA_PROJECTIONS",
    "generative_modules_to_save",
    "get_generative_peft_model",
    "llm_lora_target_regex",
    "GENERATIVE_DATA_SOURCES",
    "TINY_HOSTS",
    "GenerativeRecipe",
    "build_generative_setup",
    "load_generative_recipe",
    "run_generative_recipe",
    # recipes.py
    "DATA_SOURCES",
    "DSG_SOURCES",
    "RECIPES_FOLDER",
    "TINY_BACKBONE",
    "DataSettings",
    "LoraSettings",
    "ModelSettings",
    "RecipeError",
    "TinyBackboneSettings",
    "TrainingRecipe",
    "TrainingSettings",
    "apply_overrides",
    "load_recipe",
    # trainer.py
    "STAGING_PREFIX",
    "FinstaTrainer",
    "last_complete_checkpoint",
    "checkpoint_folders",
    "rotate_checkpoints",
    "FreezeHostCallback",
    "with_text_graphs",
    "TrainingDivergedError",
    "checkpoint_step",
    "mean_logged_loss",
    # tiny_clip.py
    "tiny_clip_config",
    # word_tokenizer.py
    "build_word_tokenizer",
    "caption_words",
    # examples.py
    "FinstaExampleDataset",
    "encode_examples",
    "finsta_synth_examples",
    "finsta_synth_hard_negatives",
    "finsta_synth_tokenizer",
    # peft_finsta.py
    "DEFAULT_LORA_PROJECTIONS",
    "backbone_lora_target_regex",
    "finsta_lora_config",
    "finsta_modules_to_save",
    "get_finsta_peft_model",
    # run.py
    "SUMMARY_FILE",
    "LazyRetrievalDataset",
    "TrainingResult",
    "build_datasets",
    "build_model_and_processor",
    "train",
    "training_arguments",
    # cli.py
    "main",
    # tasks.py
    "classification_examples",
    "finsta_synth_k_negative_examples",
    "k_negative_examples",
    "multiple_choice_examples",
]
