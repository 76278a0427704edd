"""A closed-vocabulary word tokenizer: a real CLIP BPE tokenizer built from a word list.

`build_word_tokenizer` makes a CLIP tokenizer whose merges spell each word as one token, so a model
can be trained from scratch on a closed vocabulary (Finsta-Synth) without downloading anything;
`caption_words` collects the words of a caption set.
"""

from __future__ import annotations

import re
from typing import Iterable

_WORD = re.compile(r"[a-z]+|[0-9]|[^\sa-z0-9]")


def caption_words(captions: Iterable[str]) -> list[str]:
    """Distinct lower-case words and punctuation marks of the captions, in first-seen order."""
    seen: dict[str, None] = {}
    for caption in captions:
        for word in _WORD.findall(caption.lower()):
            seen.setdefault(word, None)
    return list(seen)


def build_word_tokenizer(words: Iterable[str]):
    """A CLIP BPE tokenizer whose merges spell each given word as one token (letters otherwise).

    Offsets work (it is the fast tokenizer), so TSG nodes align with tokens exactly as with a real
    CLIP vocabulary; only the vocabulary is small.
    """
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {}

    def add(token: str) -> None:
        vocab.setdefault(token, len(vocab))

    for character in "abcdefghijklmnopqrstuvwxyz0123456789.,'!?;:-":
        add(character)
        add(character + "</w>")
    merges: list[tuple[str, str]] = []
    known_merges: set[tuple[str, str]] = set()
    for word in words:
        word = word.lower()
        if len(word) < 2:
            continue
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        current = pieces[0]
        for piece in pieces[1:]:
            if (current, piece) not in known_merges:
                known_merges.add((current, piece))
                merges.append((current, piece))
            current = current + piece
            add(current)
    add("<|startoftext|>")
    add("<|endoftext|>")
    return CLIPTokenizer(vocab=vocab, merges=merges, unk_token="<|endoftext|>", pad_token="<|endoftext|>")


__all__ = ["build_word_tokenizer", "caption_words"]
