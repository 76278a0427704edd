"""Quality and speed of the caption -> text scene graph parser.

For each available backend, prints micro precision/recall/F1 of objects, triplets, attributes and
adverbs on the gold set (modeling_finsta/evaluation/data/caption_scene_graph_gold.jsonl; the "dev"
split was used while writing the parser, the "heldout" split was not), then batched throughput in
captions/s on ~5000 distinct captions (gold captions with varied objects and colours; cache disabled).

    python benchmarks/parse_quality.py [--num-captions 5000] [--batch-sizes 256 1000] [--backends spacy rules]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

from modeling_finsta.evaluation import load_gold_records, score_parser
from modeling_finsta.text_scene_graph_parser import TextSceneGraphParser

_SUBSTITUTIONS = [
    ("man", ["man", "boy", "guy", "chef", "player", "teenager"]),
    ("woman", ["woman", "girl", "lady", "mother", "singer", "student"]),
    ("dog", ["dog", "puppy", "cat", "horse", "goat", "kitten"]),
    ("a ", ["a ", "a small ", "a red ", "an old ", "a big ", "a wooden "]),
]


def varied_captions(captions: list[str], count: int) -> list[str]:
    """Distinct-ish captions built by substituting nouns and adding adjectives to the gold captions."""
    seen: dict[str, None] = {}
    choices = [options for _, options in _SUBSTITUTIONS]
    for combination in itertools.product(*choices):
        for caption in captions:
            varied = caption
            for (original, _), replacement in zip(_SUBSTITUTIONS, combination):
                varied = varied.replace(original, replacement, 1)
            seen.setdefault(varied, None)
            if len(seen) >= count:
                return list(seen)
    return list(seen)


def measure_throughput(parser: TextSceneGraphParser, captions: list[str], batch_size: int) -> tuple[float, float]:
    """``(captions per wall second, captions per CPU second of this process)``.

    On a shared machine wall time depends on other load; CPU time shows the single-process cost.
    """
    parser.clear_cache()
    parser.parse_batch(captions[:64], batch_size=batch_size, show_progress=False)  # load the model
    parser.clear_cache()
    wall, cpu = time.perf_counter(), time.process_time()
    parser.parse_batch(captions, batch_size=batch_size, show_progress=False)
    return len(captions) / (time.perf_counter() - wall), len(captions) / (time.process_time() - cpu)


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_argument("--num-captions", type=int, default=5000)
    arguments.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1000])
    arguments.add_argument("--backends", nargs="+", default=["spacy", "rules"])
    arguments.add_argument("--show-errors", action="store_true", help="print every caption with a wrong triplet or object")
    options = arguments.parse_args()

    records = load_gold_records()
    splits = {"all": records}
    for record in records:
        splits.setdefault(record.get("split", "dev"), []).append(record)
    captions = varied_captions([record["caption"] for record in records], options.num_captions)
    print(f"gold set: {len(records)} captions ({', '.join(f'{k}={len(v)}' for k, v in splits.items() if k != 'all')})")

    for backend in options.backends:
        parser = TextSceneGraphParser(backend=backend, cache_size=0)
        try:
            parser.backend
        except OSError as error:
            print(f"[{backend}] unavailable: {error}")
            continue
        for split, split_records in splits.items():
            scores = score_parser(parser, split_records)
            summary = "  ".join(
                f"{name} P/R/F1 {scores[name]['precision']:.3f}/{scores[name]['recall']:.3f}/{scores[name]['f1']:.3f}"
                for name in ("objects", "triplets", "attributes", "adverbs")
            )
            print(f"[{backend}] {split:8s} n={len(split_records):3d}  {summary}")
            if options.show_errors and split == "all":
                for error in scores["errors"]:
                    print("    " + json.dumps(error))
        for batch_size in options.batch_sizes:
            wall_speed, cpu_speed = measure_throughput(parser, captions, batch_size)
            print(f"[{backend}] batched throughput: {wall_speed:.0f} captions/s wall, {cpu_speed:.0f} captions/CPU-s "
                  f"({len(captions)} distinct captions, batch_size={batch_size}, cache off)")


if __name__ == "__main__":
    main()
