"""`FinstaTrainer`: `transformers.Trainer` with atomic checkpoints and a backbone learning rate.

Checkpoints are written atomically: each ``checkpoint-N`` is written into a hidden staging folder
(``.incomplete-checkpoint-N/``) and renamed into place only when every process has finished
writing it, so a run killed while saving never leaves a ``checkpoint-N`` that ``--resume`` would
pick up half-written (the stock Trainer writes straight into ``checkpoint-N`` and resumes from the
highest-numbered folder whatever its state). `last_complete_checkpoint` finds the one to resume from.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Optional, Union

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

logger = logging.getLogger(__name__)

STAGING_PREFIX = ".incomplete-"
"""Prefix of the hidden folder a checkpoint is written into before it is renamed into place."""


def _fsync_tree(folder: Path) -> None:
    """Flush every file (and folder entry) under ``folder`` to disk before it is published."""
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _is_complete_checkpoint(folder: Path) -> bool:
    """Trainer writes ``trainer_state.json`` last; a folder without it was not finished."""
    return folder.is_dir() and (folder / "trainer_state.json").is_file()


def checkpoint_folders(output_dir: Union[str, os.PathLike]) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every ``checkpoint-N`` in ``output_dir``, oldest first (staging folders excluded)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    steps = []
    for child in folder.iterdir():
        name = child.name
        if child.is_dir() and name.startswith(f"{PREFIX_CHECKPOINT_DIR}-") and name[len(PREFIX_CHECKPOINT_DIR) + 1 :].isdigit():
            steps.append((int(name[len(PREFIX_CHECKPOINT_DIR) + 1 :]), child))
    return sorted(steps)


def last_complete_checkpoint(output_dir: Union[str, os.PathLike]) -> Optional[Path]:
    """The highest ``checkpoint-N`` in ``output_dir`` that was completely written, or None.

    Staging folders (``.incomplete-checkpoint-N``) never match, and a ``checkpoint-N`` without its
    ``trainer_state.json`` (e.g. written by a non-atomic writer that was killed) is skipped.
    """
    for _, child in reversed(checkpoint_folders(output_dir)):
        if _is_complete_checkpoint(child):
            return child
        logger.warning("ignoring incomplete checkpoint %s (no trainer_state.json)", child)
    return None


def rotate_checkpoints(
    output_dir: Union[str, os.PathLike], save_total_limit: Optional[int], best_model_checkpoint: Optional[str] = None
) -> list[Path]:
    """Keep the newest ``save_total_limit`` *complete* checkpoints (and the best one); returns what was deleted.

    Unlike transformers' rotation, a broken ``checkpoint-N`` (no ``trainer_state.json``) never counts
    towards the limit, so it can never push out a good checkpoint. Broken checkpoints and leftover
    staging folders are deleted only once a newer complete checkpoint exists; until then they are
    left for inspection (and a run that reaches their step replaces them).
    """
    folder = Path(output_dir)
    folders = checkpoint_folders(folder)
    complete = [(step, path) for step, path in folders if _is_complete_checkpoint(path)]
    deleted: list[Path] = []
    if complete and save_total_limit is not None and save_total_limit > 0:
        keep = {path for _, path in complete[-save_total_limit:]}
        if best_model_checkpoint:
            keep.add(Path(best_model_checkpoint))
        deleted += [path for _, path in complete if path not in keep]
    if complete:
        newest = complete[-1][0]
        deleted += [path for step, path in folders if step < newest and not _is_complete_checkpoint(path)]
        for staging in folder.glob(f"{STAGING_PREFIX}{PREFIX_CHECKPOINT_DIR}-*"):
            step = staging.name[len(STAGING_PREFIX) + len(PREFIX_CHECKPOINT_DIR) + 1 :]
            if step.isdigit() and int(step) <= newest:
                deleted.append(staging)
    for path in deleted:
        logger.info("deleting %s", path)
        shutil.rmtree(path, ignore_errors=True)
    return deleted


class FreezeHostCallback(TrainerCallback):
    """[ours] Freeze the host (backbone and host adapter) for the first ``steps`` optimizer steps.

    Frozen parameters get no gradient, so the optimizer leaves them alone; they are released at step
    ``steps`` (also after a resume past that point).
    """

    def __init__(self, steps: int):
        self.steps = steps
        self._frozen = False  # the parameters are touched only when this changes, not every step

    @staticmethod
    def _host_parameters(model):
        model = getattr(model, "module", model)
        model = model.get_base_model() if hasattr(model, "get_base_model") else model
        for name in ("backbone", "host_adapter"):
            yield from getattr(model, name).parameters()

    def _set(self, model, frozen: bool) -> None:
        for parameter in self._host_parameters(model):
            if frozen:
                parameter._finsta_trainable = getattr(parameter, "_finsta_trainable", parameter.requires_grad)
                parameter.requires_grad_(False)
            elif hasattr(parameter, "_finsta_trainable"):
                parameter.requires_grad_(parameter._finsta_trainable)
                del parameter._finsta_trainable

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        frozen = state.global_step < self.steps
        if frozen != self._frozen:
            self._set(model, frozen)
            self._frozen = frozen

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self._frozen:
            self._set(model, False)
            self._frozen = False


class FinstaTrainer(Trainer):
    """`Trainer` with atomic checkpoints and an optional separate learning rate for the backbone.

    Args:
        backbone_learning_rate: learning rate of the host backbone's own weights (names under
            ``backbone.``, LoRA adapters excluded); the rest (Finsta head, temporal header, LoRA)
            uses ``args.learning_rate``. None: one learning rate for everything.
    """

    def __init__(self, *args, backbone_learning_rate: Optional[float] = None, **kwargs):
        self.backbone_learning_rate = backbone_learning_rate
        self._checkpoint_staging_dir: Optional[str] = None
        super().__init__(*args, **kwargs)

    # ---- optimiser ---------------------------------------------------------------------------
    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.backbone_learning_rate is None or self.optimizer is not None:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(opt_model))
        groups: dict[tuple[bool, bool], list] = {}
        for name, parameter in opt_model.named_parameters():
            if not parameter.requires_grad:
                continue
            in_backbone = ".backbone." in f".{name}" and "lora_" not in name
            groups.setdefault((in_backbone, name in decay), []).append(parameter)
        parameter_groups = [
            {
                "params": parameters,
                "weight_decay": self.args.weight_decay if decays else 0.0,
                "lr": self.backbone_learning_rate if in_backbone else self.args.learning_rate,
            }
            for (in_backbone, decays), parameters in sorted(groups.items())
        ]
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        optimizer_kwargs.pop("params", None)
        self.optimizer = optimizer_cls(parameter_groups, **optimizer_kwargs)
        return self.optimizer

    # ---- atomic checkpoints ------------------------------------------------------------------
    def _get_output_dir(self, trial) -> str:
        # While a checkpoint is being written, Trainer's run folder is the staging folder.
        if self._checkpoint_staging_dir is not None:
            return self._checkpoint_staging_dir
        return super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = Path(super()._get_output_dir(trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging = run_dir / f"{STAGING_PREFIX}{name}"
        if self.args.should_save and staging.exists():
            shutil.rmtree(staging)  # left over by a run killed while saving
        self.accelerator.wait_for_everyone()
        self._checkpoint_staging_dir = str(staging)
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._checkpoint_staging_dir = None
        # Every process (sharded optimiser states, per-rank RNG states) must be done writing.
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            if self.state.best_global_step:
                best = run_dir / f"{PREFIX_CHECKPOINT_DIR}-{self.state.best_global_step}"
                if best.name == name or best.is_dir():
                    self.state.best_model_checkpoint = str(best)
                    self.state.save_to_json(str(staging / name / "trainer_state.json"))
            self._publish_checkpoint(staging / name, run_dir / name)
            shutil.rmtree(staging, ignore_errors=True)
            rotate_checkpoints(run_dir, self.args.save_total_limit, self.state.best_model_checkpoint)
        self.accelerator.wait_for_everyone()

    @staticmethod
    def _publish_checkpoint(staged: Path, final: Path) -> None:
        """Rename a finished checkpoint into place (replacing an older one of the same step)."""
        _fsync_tree(staged)
        if final.exists():
            replaced = final.parent / f"{STAGING_PREFIX}replaced-{final.name}"
            shutil.rmtree(replaced, ignore_errors=True)
            os.replace(final, replaced)
            os.replace(staged, final)
            shutil.rmtree(replaced, ignore_errors=True)
        else:
            os.replace(staged, final)
        _fsync_folder(final.parent)


__all__ = ["STAGING_PREFIX", "FinstaTrainer", "FreezeHostCallback", "checkpoint_folders", "last_complete_checkpoint", "rotate_checkpoints"]
