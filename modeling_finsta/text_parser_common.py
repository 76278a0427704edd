"""What both caption-parser backends share: closed word lists, the graph assembler (nodes, spans,
typed edges and pronoun resolution) and the ``lemminflect`` lemma helper.

The annotation conventions the backends follow are described in ``text_scene_graph_parser``.
This module travels with a saved processor as Hub remote code; its only third-party import
(``lemminflect``) sits in a ``try`` block so that transformers' remote-code import check does not
demand it.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from .scene_graphs import ParsedTextSceneGraph

# ----------------------------------------------------------------------------------------------
# Closed word lists shared by both backends.
# ----------------------------------------------------------------------------------------------

MALE_PERSON_NOUNS = frozenset(
    "man boy guy gentleman father dad son husband brother king prince grandfather grandpa uncle "
    "boyfriend groom sir actor waiter".split()
)
FEMALE_PERSON_NOUNS = frozenset(
    "woman girl lady mother mom mum daughter wife sister queen princess grandmother grandma aunt "
    "girlfriend bride actress waitress".split()
)
NEUTRAL_PERSON_NOUNS = frozenset(
    "person people child kid baby toddler infant teenager teen player chef cook someone somebody "
    "everyone everybody anyone student teacher singer dancer athlete driver reporter anchor host "
    "doctor nurse worker friend parent customer audience crowd team band family couple artist "
    "musician character rider skier surfer swimmer runner boxer wrestler coach officer police "
    "soldier judge contestant presenter speaker narrator user gamer farmer baker vlogger "
    "commentator group adult audience cyclist biker skateboarder fighter performer model".split()
)
PERSON_NOUNS = MALE_PERSON_NOUNS | FEMALE_PERSON_NOUNS | NEUTRAL_PERSON_NOUNS
ANIMAL_NOUNS = frozenset(
    "dog puppy cat kitten horse bird monkey cow pig sheep goat chicken duck fish bear lion tiger "
    "elephant rabbit mouse rat hamster parrot dolphin whale snake turtle frog deer fox wolf "
    "giraffe zebra penguin animal pet".split()
)
PLURAL_PERSON_NOUNS = frozenset("people crowd audience team band family couple group police".split())

MALE_PRONOUNS = frozenset(("he", "him", "himself"))
FEMALE_PRONOUNS = frozenset(("she", "her", "herself"))
NEUTER_PRONOUNS = frozenset(("it", "itself"))
PLURAL_PRONOUNS = frozenset(("they", "them", "themselves"))
PERSONAL_PRONOUNS = MALE_PRONOUNS | FEMALE_PRONOUNS | NEUTER_PRONOUNS | PLURAL_PRONOUNS
INDEFINITE_OBJECT_PRONOUNS = frozenset(
    "someone somebody something everyone everybody anyone anybody".split()
)
RELATIVE_PRONOUNS = frozenset(("who", "whom", "which", "that"))

COUNT_WORDS = frozenset("many several few multiple both numerous various".split())
COLLECTIVE_NOUNS = frozenset(
    "group couple bunch crowd lot lots pair number herd flock pack handful team variety".split()
)
PARTICLES = frozenset(
    "away out up down off back over around along aside apart in on through forward backward "
    "backwards".split()
)
LIGHT_VERBS = frozenset(
    "start begin continue keep try attempt stop finish proceed go want seem appear need tend "
    "manage".split()
)
# Nouns that only build a multi-word preposition: "in front of", "on top of".
PREPOSITION_NOUNS = frozenset(("front", "top"))
NON_ATTRIBUTE_ADVERBS = frozenset(("how", "when", "where", "why", "not", "n't", "there"))


# ----------------------------------------------------------------------------------------------
# Graph assembly shared by both backends.
# ----------------------------------------------------------------------------------------------


class Word:
    """Backend-neutral word: text, lemma, character offset and index in the caption."""

    __slots__ = ("text", "lemma", "start", "index")

    def __init__(self, text: str, lemma: str, start: int, index: int) -> None:
        self.text = text
        self.lemma = lemma
        self.start = start
        self.index = index

    @property
    def span(self) -> tuple[int, int]:
        return (self.start, self.start + len(self.text))


class GraphAssembler:
    """Builds a ``ParsedTextSceneGraph`` from word-level decisions, deduplicating nodes.

    Both backends decide *which* words are objects, predicates and so on; this class turns those
    decisions into nodes with spans and typed edges, and resolves pronouns the same way for both.
    """

    def __init__(self, caption: str) -> None:
        self.graph = ParsedTextSceneGraph(caption=caption)
        self.object_node_by_word: dict[int, int] = {}
        self.object_words: list[tuple[Word, bool]] = []  # (head word, is plural)
        self.coordination_groups: dict[int, list[int]] = {}  # first word index -> all word indices
        self._nodes_by_key: dict[tuple, int] = {}

    def _node(self, key: tuple, kind: str, words: Sequence[Word], lemma: str) -> int:
        if key not in self._nodes_by_key:
            ordered = sorted(words, key=lambda word: word.start)
            text = " ".join(word.text for word in ordered)
            self._nodes_by_key[key] = self.graph.add_node(kind, text, lemma, [word.span for word in ordered])
        return self._nodes_by_key[key]

    def add_object(self, word: Word, plural: bool = False) -> int:
        node = self._node(("object", word.index), "object", [word], word.lemma)
        if word.index not in self.object_node_by_word:
            self.object_node_by_word[word.index] = node
            self.object_words.append((word, plural))
        return node

    def add_attribute(self, object_node: int, words: Sequence[Word], lemma: str) -> None:
        key = ("attribute", object_node, tuple(word.index for word in words))
        self.graph.add_edge(object_node, self._node(key, "attribute", words, lemma), "attribute")

    def add_predicate(
        self,
        words: Sequence[Word],
        subjects: Iterable[int],
        objects: Iterable[int],
        adverbs: Sequence[Word] = (),
    ) -> int:
        lemma = " ".join(word.lemma for word in sorted(words, key=lambda word: word.start))
        key = ("predicate", tuple(sorted(word.index for word in words)))
        node = self._node(key, "predicate", words, lemma)
        for subject in subjects:
            self.graph.add_edge(subject, node, "subject")
        for obj in objects:
            if obj is not None:
                self.graph.add_edge(node, obj, "object")
        for adverb in adverbs:
            adverb_node = self._node(("adverb", adverb.index), "predicate_attribute", [adverb], adverb.lemma)
            self.graph.add_edge(node, adverb_node, "predicate_attribute")
        return node

    def resolve_pronoun(self, pronoun: str, position: int, exclude: Iterable[int] = ()) -> list[int]:
        """Object nodes a personal pronoun refers to: the nearest compatible preceding object(s).

        ``exclude`` holds nodes that cannot be the referent (the subject of the verb whose object
        the pronoun is: "a man holds a baby and kisses him" -> baby, not man). Returns ``[]`` when
        nothing fits, so the pronoun is dropped rather than guessed.
        """
        pronoun = pronoun.lower()
        excluded = set(exclude)
        candidates = [
            (word, plural)
            for word, plural in sorted(self.object_words, key=lambda item: -item[0].index)
            if word.index < position and self.object_node_by_word[word.index] not in excluded
        ]
        if pronoun in PLURAL_PRONOUNS:
            for word, plural in candidates:
                group = self.coordination_groups.get(word.index)
                if group is None:
                    for members in self.coordination_groups.values():
                        if word.index in members:
                            group = members
                if group is not None and len(group) > 1:
                    return [self.object_node_by_word[index] for index in group if index in self.object_node_by_word]
                if plural or word.lemma in PLURAL_PERSON_NOUNS:
                    return [self.object_node_by_word[word.index]]
            return []
        if pronoun in NEUTER_PRONOUNS:
            for word, _ in candidates:
                if word.lemma not in PERSON_NOUNS:
                    return [self.object_node_by_word[word.index]]
            return []
        wrong_gender = FEMALE_PERSON_NOUNS if pronoun in MALE_PRONOUNS else MALE_PERSON_NOUNS
        for allowed in (PERSON_NOUNS - wrong_gender, ANIMAL_NOUNS):
            for word, _ in candidates:
                if word.lemma in allowed and word.lemma not in PLURAL_PERSON_NOUNS:
                    return [self.object_node_by_word[word.index]]
        return []


# ----------------------------------------------------------------------------------------------
# Lemmas.
# ----------------------------------------------------------------------------------------------

_LEMMAS: dict[tuple[str, str], str] = {}
_LEMMINFLECT_POS = {"NOUN": "NOUN", "PROPN": "NOUN", "VERB": "VERB", "AUX": "VERB", "ADJ": "ADJ"}


def word_lemma(text: str, pos: str) -> str:
    """Lemma from ``lemminflect`` (cached); the spaCy backend uses it instead of spaCy's lemmatizer pipe.

    It is faster (the lemmatizer is ~25% of the pipeline's time on short captions) and better on
    verbs (en_core_web_sm lemmatises "riding" as "rid"). Closed-class words keep their lower case.
    """
    text = text.lower()
    upos = _LEMMINFLECT_POS.get(pos)
    if upos is None:
        return text
    key = (text, upos)
    if key not in _LEMMAS:
        lemma = text
        try:
            import lemminflect

            candidates = lemminflect.getLemma(text, upos=upos)
            if candidates:
                lemma = candidates[0].lower()
        except ImportError:  # pragma: no cover - lemminflect is a dependency
            pass
        _LEMMAS[key] = lemma
    return _LEMMAS[key]


__all__ = [
    "ANIMAL_NOUNS",
    "COLLECTIVE_NOUNS",
    "COUNT_WORDS",
    "FEMALE_PERSON_NOUNS",
    "FEMALE_PRONOUNS",
    "GraphAssembler",
    "INDEFINITE_OBJECT_PRONOUNS",
    "LIGHT_VERBS",
    "MALE_PERSON_NOUNS",
    "MALE_PRONOUNS",
    "NEUTER_PRONOUNS",
    "NEUTRAL_PERSON_NOUNS",
    "NON_ATTRIBUTE_ADVERBS",
    "PARTICLES",
    "PERSONAL_PRONOUNS",
    "PERSON_NOUNS",
    "PLURAL_PERSON_NOUNS",
    "PLURAL_PRONOUNS",
    "PREPOSITION_NOUNS",
    "RELATIVE_PRONOUNS",
    "Word",
    "word_lemma",
]
