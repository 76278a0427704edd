"""Command lines of the converters and the publisher (argument parsing only; the work is in
``hub/converters.py`` and ``hub/publishing.py``).

Console scripts: ``finsta-convert-clip4clip``, ``finsta-convert-clip``, ``finsta-convert-xclip``,
``finsta-convert-siglip``, ``finsta-convert-videoprism``, ``finsta-push``, ``finsta-export-host`` (``hub/export.py``);
the thin scripts in ``conversion/`` call the same functions.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any, Optional

from .checkpoint_conversion import CheckpointConversionError
from .converters import convert_clip, convert_clip4clip_original, convert_siglip, convert_videoprism, convert_xclip
from .export import HOST_EXPORT_FORMATS, export_host
from .progress import log
from .publishing import PublishError, publish_folder
from .verification import ConversionVerificationError


def _parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    overrides = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"error: --set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output_dir", help="folder to write (created if needed)")
    parser.add_argument("--repo-id", default=None, help="Hub repo the folder is meant for (used in the model card)")
    parser.add_argument("--card-data", default=None, help="model card data file or name in model_cards/")
    parser.add_argument("--card-template", default=None, help="model card template (default: model_cards/template.md)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="FinstaConfig field for the new head, e.g. --set graph_hidden_size=512 (JSON values)",
    )  # fmt: skip
    parser.add_argument("--tolerance", type=float, default=1e-5, help="max |diff| allowed in the embedding check")


def _run(convert, **kwargs) -> int:
    try:
        report = convert(**kwargs)
    except (CheckpointConversionError, ConversionVerificationError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", flush=True)
        return 2
    log(f"success: {report.output_dir}")
    return 0


def convert_clip4clip_main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="finsta-convert-clip4clip",
        description="Convert an original CLIP4Clip training checkpoint (meanP or seqTransf) to a Finsta folder.",
    )
    parser.add_argument("checkpoint", help="pytorch_model.bin.<epoch> written by CLIP4Clip (or a .safetensors)")
    _common_arguments(parser)
    parser.add_argument("--tokenizer", default=None, help="CLIP tokenizer folder or cached Hub id to include")
    parser.add_argument("--num-frames", type=int, default=12, help="frames per video in the processor (CLIP4Clip: 12)")
    parser.add_argument(
        "--attention-head-dim", type=int, default=64, help="head width used to infer head counts (64 in all OpenAI CLIPs)"
    )
    args = parser.parse_args(argv)
    return _run(
        convert_clip4clip_original, checkpoint=args.checkpoint, output_dir=args.output_dir, tokenizer=args.tokenizer,
        attention_head_dim=args.attention_head_dim, config_overrides=_parse_overrides(args.overrides),
        card_data=args.card_data, card_template=args.card_template, repo_id=args.repo_id, num_frames=args.num_frames,
        tolerance=args.tolerance,
    )  # fmt: skip


def convert_clip_main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="finsta-convert-clip", description="Convert a transformers CLIP checkpoint to a Finsta-CLIP4Clip folder."
    )
    parser.add_argument("source", help="CLIP folder or Hub id (read from the cache when HF_HUB_OFFLINE=1)")
    _common_arguments(parser)
    parser.add_argument("--temporal-head", choices=("meanP", "seqTransf"), default="meanP")
    parser.add_argument("--temporal-num-layers", type=int, default=4)
    parser.add_argument("--num-frames", type=int, default=12)
    parser.add_argument("--local-files-only", action="store_true", help="never contact the Hub")
    args = parser.parse_args(argv)
    return _run(
        convert_clip, source=args.source, output_dir=args.output_dir, temporal_head=args.temporal_head,
        temporal_num_layers=args.temporal_num_layers, local_files_only=args.local_files_only,
        config_overrides=_parse_overrides(args.overrides), card_data=args.card_data,
        card_template=args.card_template, repo_id=args.repo_id, num_frames=args.num_frames, tolerance=args.tolerance,
    )  # fmt: skip


def convert_xclip_main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="finsta-convert-xclip", description="Convert a transformers X-CLIP checkpoint to a Finsta-X-CLIP folder."
    )
    parser.add_argument("source", help="X-CLIP folder or Hub id (read from the cache when HF_HUB_OFFLINE=1)")
    _common_arguments(parser)
    parser.add_argument("--local-files-only", action="store_true", help="never contact the Hub")
    args = parser.parse_args(argv)
    return _run(
        convert_xclip, source=args.source, output_dir=args.output_dir, local_files_only=args.local_files_only,
        config_overrides=_parse_overrides(args.overrides), card_data=args.card_data,
        card_template=args.card_template, repo_id=args.repo_id, tolerance=args.tolerance,
    )  # fmt: skip


def convert_siglip_main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="finsta-convert-siglip",
        description="Convert a transformers SigLIP or SigLIP2 (NaFlex) checkpoint to a Finsta-SigLIP folder (frames one at a time).",
    )
    parser.add_argument("source", help="SigLIP / SigLIP2 folder or Hub id (read from the cache when HF_HUB_OFFLINE=1)")
    _common_arguments(parser)
    parser.add_argument("--temporal-head", choices=("meanP", "seqTransf"), default="meanP")
    parser.add_argument("--temporal-num-layers", type=int, default=4)
    parser.add_argument("--num-frames", type=int, default=12)
    parser.add_argument("--tokenizer", default=None, help="a fast tokenizer to use instead of the source's (offsets needed)")
    parser.add_argument("--local-files-only", action="store_true", help="never contact the Hub")
    args = parser.parse_args(argv)
    return _run(
        convert_siglip, source=args.source, output_dir=args.output_dir, temporal_head=args.temporal_head,
        temporal_num_layers=args.temporal_num_layers, tokenizer=args.tokenizer, local_files_only=args.local_files_only,
        config_overrides=_parse_overrides(args.overrides), card_data=args.card_data, card_template=args.card_template,
        repo_id=args.repo_id, num_frames=args.num_frames, tolerance=args.tolerance,
    )  # fmt: skip


def convert_videoprism_main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="finsta-convert-videoprism", description="Convert a transformers VideoPrism video-text checkpoint to a Finsta folder."
    )
    parser.add_argument("source", help="VideoPrismClipModel folder or Hub id (read from the cache when HF_HUB_OFFLINE=1)")
    _common_arguments(parser)
    parser.add_argument("--local-files-only", action="store_true", help="never contact the Hub")
    args = parser.parse_args(argv)
    return _run(
        convert_videoprism, source=args.source, output_dir=args.output_dir, local_files_only=args.local_files_only,
        config_overrides=_parse_overrides(args.overrides), card_data=args.card_data,
        card_template=args.card_template, repo_id=args.repo_id, tolerance=args.tolerance,
    )  # fmt: skip


def export_host_main(argv: Optional[Sequence[str]] = None) -> int:
    """``finsta-export-host FINSTA_FOLDER OUTPUT_DIR [--format auto|clip|xclip|clip4clip] [--tolerance 1e-5]``."""
    formats = "; ".join(f"{name}: {what}" for name, what in HOST_EXPORT_FORMATS.items())
    parser = argparse.ArgumentParser(
        prog="finsta-export-host",
        description="Write a (post-)trained Finsta model's host back in the host's own format, loadable with "
        "transformers alone (no Finsta code, no trust_remote_code). The export is reloaded and must reproduce "
        "the Finsta model's distilled embeddings before success is reported.",
    )
    parser.add_argument("source", help="a saved Finsta model folder (finsta-train, finsta-convert-*, save_pretrained)")
    parser.add_argument("output_dir", help="folder to write (must not exist or be empty)")
    parser.add_argument(
        "--format", choices=("auto", *HOST_EXPORT_FORMATS), default="auto",
        help=f"auto (default) picks the host's own: meanP -> clip, seqTransf -> clip4clip, X-CLIP -> xclip. {formats}",
    )  # fmt: skip
    parser.add_argument("--tolerance", type=float, default=1e-5, help="max |diff| allowed in the embedding check")
    args = parser.parse_args(argv)
    try:
        report = export_host(args.source, args.output_dir, format=args.format, tolerance=args.tolerance)
    except (CheckpointConversionError, ConversionVerificationError, OSError, ValueError) as error:
        print(f"error: {error}", flush=True)
        return 2
    log(f"success: {report.output_dir} ({report.format})")
    return 0


def publish_main(argv: Optional[Sequence[str]] = None, api: Any = None) -> int:
    """``finsta-push FOLDER ORG/NAME [--private] [--revision BRANCH] [--create-pr] [--code-repo ORG/CODE]``."""
    parser = argparse.ArgumentParser(
        prog="finsta-push",
        description="Upload a converted or trained Finsta folder (weights, config, code, processor, card) to the Hub.",
    )
    parser.add_argument("folder", help="folder written by a finsta converter or save_pretrained")
    parser.add_argument("repo_id", help="target model repo, 'org/name'")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--revision", "--branch", dest="revision", default=None, help="branch to commit to")
    parser.add_argument("--create-pr", action="store_true", help="open the commit as a pull request")
    parser.add_argument("--commit-message", default=None)
    parser.add_argument(
        "--code-repo", default=None, help="point auto_map at this code repo instead of uploading the .py files"
    )
    args = parser.parse_args(argv)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    try:
        info = publish_folder(
            args.folder, args.repo_id, api, private=args.private, revision=args.revision,
            create_pr=args.create_pr, commit_message=args.commit_message, code_repo=args.code_repo,
        )  # fmt: skip
    except (PublishError, FileNotFoundError) as error:
        print(f"error: {error}", flush=True)
        return 2
    url = getattr(info, "pr_url", None) or getattr(info, "commit_url", None)
    log(f"done{': ' + url if url else ''}")
    return 0


def push_main(argv: Optional[Sequence[str]] = None) -> int:
    """Console script ``finsta-push`` (see ``publish_main``)."""
    return publish_main(argv)


__all__ = [
    "convert_clip4clip_main",
    "convert_clip_main",
    "convert_siglip_main",
    "convert_videoprism_main",
    "convert_xclip_main",
    "export_host_main",
    "publish_main",
    "push_main",
]
