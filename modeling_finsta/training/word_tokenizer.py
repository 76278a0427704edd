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


def _bpe(pieces: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Byte-pair encoding of one word: repeatedly merge the adjacent pair of lowest rank."""
    pieces = list(pieces)
    while len(pieces) > 1:
        rank, index = min((ranks.get(pair, len(ranks)), i) for i, pair in enumerate(zip(pieces, pieces[1:])))
        if rank == len(ranks):
            break
        pieces[index : index + 2] = [pieces[index] + pieces[index + 1]]
    return pieces


def build_word_tokenizer(words: Iterable[str]):
    """A CLIP BPE tokenizer whose merges spell each given word as one token (letters otherwise).

    The merges are learned the way BPE training learns them: each new merge joins the leftmost pair of
    a word as the merges so far segment it, until every word is one token. So applying them in rank
    order (what the tokenizer does) reproduces every word whole; merges written per word independently
    would let one word's merge split another ("green" -> g/re/e/n). Offsets work (it is the fast
    tokenizer), so TSG nodes align with tokens exactly as with a real CLIP vocabulary.
    """
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {}

    def add(token: str) -> None:
        vocab.setdefault(token, len(vocab))

    for character in "abcdefghijklmnopqrstuvwxyz0123456789.,'!?;:-":
        add(character)
        add(character + "</w>")
    spellings = [list(w[:-1]) + [w[-1] + "</w>"] for w in dict.fromkeys(word.lower() for word in words) if len(w) > 1]
    ranks: dict[tuple[str, str], int] = {}
    changed = True
    while changed:
        changed = False
        for spelling in spellings:
            pieces = _bpe(spelling, ranks)
            if len(pieces) > 1:
                ranks[(pieces[0], pieces[1])] = len(ranks)
                add(pieces[0] + pieces[1])
                changed = True
    add("<|startoftext|>")
    add("<|endoftext|>")
    merges = sorted(ranks, key=ranks.get)
    return CLIPTokenizer(vocab=vocab, merges=merges, unk_token="<|endoftext|>", pad_token="<|endoftext|>")


__all__ = ["build_word_tokenizer", "caption_words"]
