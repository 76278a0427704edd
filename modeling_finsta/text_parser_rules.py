"""Rule backend of the caption parser: no statistical model.

``RuleBackend`` tags words with closed word lists and ``lemminflect`` (``RuleBackend.tag``), and a
left-to-right clause reader chunks them into noun phrases, verb phrases and prepositional phrases
and emits the graph, following the annotation conventions in ``text_scene_graph_parser`` as far as
attachment by position allows. ``TextSceneGraphParser`` falls back to it when spaCy cannot be loaded.

This module travels with a saved processor as Hub remote code; ``lemminflect`` is imported inside a
``try`` block so that transformers' remote-code import check does not demand it.
"""

from __future__ import annotations

import re
from typing import Iterator, Optional, Sequence

from .scene_graphs import ParsedTextSceneGraph
from .text_parser_common import (
    COLLECTIVE_NOUNS,
    COUNT_WORDS,
    INDEFINITE_OBJECT_PRONOUNS,
    LIGHT_VERBS,
    PARTICLES,
    PERSONAL_PRONOUNS,
    PREPOSITION_NOUNS,
    RELATIVE_PRONOUNS,
    GraphAssembler,
    Word,
)

# ----------------------------------------------------------------------------------------------
# Rule backend: no statistical model.
# ----------------------------------------------------------------------------------------------

_DETERMINERS = frozenset("a an the this that these those his her their its my your our some each every any another".split())
_PREPOSITIONS = frozenset(
    "in on at with into onto from to of by for about across through under over behind near beside "
    "between inside outside along around down up off out toward towards against during without "
    "above below beneath past upon among within next".split()
)
# Particles that after a verb almost always belong to it ("takes out", "picks up").
_STRONG_PARTICLES = frozenset("out up off away back down".split())
_AUXILIARIES = frozenset(
    "is are was were be been being am has have had does do did can could will would should may might must".split()
)
_BE_FORMS = frozenset("is are was were be been being am".split())
_NUMBER_WORDS = frozenset("one two three four five six seven eight nine ten eleven twelve twenty hundred".split())
_CONJUNCTIONS = frozenset(("and", "or", "but", "then", "while", "as", "before", "after"))
_WH_WORDS = frozenset(("how", "what", "where", "when", "why"))
_SUBJECT_PRONOUNS = frozenset(("he", "she", "they", "it", "we", "i", "you"))
_CLOSED_ADVERBS = frozenset(
    "together fast hard very too also again still just then now here outside inside upstairs "
    "downstairs well later soon already almost".split()
)
_ADJECTIVES = frozenset(
    "red blue green yellow black white brown orange pink purple gray grey golden silver big small "
    "large little tiny huge tall short long old young new wooden metal plastic hot cold wet dry "
    "happy sad funny cute beautiful pretty fat thin empty full dark bright heavy".split()
)
_TOKEN_PATTERN = re.compile(r"[A-Za-z]+(?:'[a-z]+)?|\d+(?:\.\d+)?|[^\sA-Za-z\d]")


def _is_closed_class(word: str) -> bool:
    return (
        not word
        or not word[0].isalnum()
        or word in _DETERMINERS
        or word in _PREPOSITIONS
        or word in _AUXILIARIES
        or word in _CONJUNCTIONS
        or word in PERSONAL_PRONOUNS
        or word in RELATIVE_PRONOUNS
        or word in _WH_WORDS
        or word == "to"
    )


class RuleBackend:
    """Left-to-right tagger and chunker over closed word lists with ``lemminflect`` lemmas.

    Weaker than the dependency rules (attachment is decided by position only), but needs no
    statistical model: a verb phrase opens a predicate, the clause's noun phrase (or the noun a
    participle or relative pronoun follows) is its subject, following noun phrases and
    prepositional phrases give its objects.
    """

    name = "rules"

    def __init__(self) -> None:
        try:
            import lemminflect
        except ImportError as error:  # pragma: no cover - lemminflect is a hard dependency
            raise ImportError("the 'rules' TSG backend needs `lemminflect` (pip install lemminflect)") from error
        self._lemminflect = lemminflect
        self._lemma_cache: dict[tuple[str, str], str] = {}
        self._tag_cache: dict[str, frozenset] = {}

    def parse_many(self, captions: Sequence[str], batch_size: int) -> Iterator[ParsedTextSceneGraph]:
        for caption in captions:
            yield self.parse_one(caption)

    def parse_one(self, caption: str) -> ParsedTextSceneGraph:
        matches = list(_TOKEN_PATTERN.finditer(caption))
        lowered = [match.group().lower() for match in matches]
        tags = self.tag(lowered)
        words = [
            Word(match.group(), self._lemma(word, tag), match.start(), index)
            for index, (match, word, tag) in enumerate(zip(matches, lowered, tags))
        ]
        return _RuleClauseReader(caption, words, tags).read()

    # -- tagging -------------------------------------------------------------------------------

    def _lemma(self, word: str, tag: str) -> str:
        if tag not in ("NOUN", "VERB", "ADJ"):
            return word
        key = (word, tag)
        if key not in self._lemma_cache:
            lemmas = self._lemminflect.getLemma(word, upos=tag)
            self._lemma_cache[key] = (lemmas[0] if lemmas else word).lower()
        return self._lemma_cache[key]

    def _candidates(self, word: str) -> frozenset:
        """Open-class parts of speech ``lemminflect`` knows for a word form."""
        if word not in self._tag_cache:
            self._tag_cache[word] = frozenset(self._lemminflect.getAllLemmas(word))
        return self._tag_cache[word]

    def _is_plural_noun(self, word: str) -> bool:
        lemmas = self._lemminflect.getLemma(word, upos="NOUN")
        return bool(lemmas) and lemmas[0] != word

    def tag(self, words: list[str]) -> list[str]:
        """Coarse tags: DET NUM ADJ NOUN VERB AUX ADV PREP PART TO CONJ PRON REL EXPL WH PUNCT."""
        tags: list[str] = []
        finite_verb_in_clause = False
        coordinated_subject = False
        for position, word in enumerate(words):
            previous = tags[-1] if tags else None
            previous_word = words[position - 1] if position else ""
            following = words[position + 1] if position + 1 < len(words) else ""
            tag = self._closed_tag(word, previous, previous_word, following)
            if tag is None:
                tag = self._open_tag(
                    word, previous, previous_word, following, tags, finite_verb_in_clause, coordinated_subject
                )
            if tag == "VERB" and (previous == "AUX" or not word.endswith("ing")):
                finite_verb_in_clause = True
            if tag == "AUX":
                finite_verb_in_clause = True
            if tag in ("CONJ", "REL", "PUNCT"):
                coordinated_subject = tag == "CONJ" and previous == "NOUN" and "VERB" not in tags and "AUX" not in tags
                finite_verb_in_clause = False
            tags.append(tag)
        return tags

    def _closed_tag(self, word: str, previous: Optional[str], previous_word: str, following: str) -> Optional[str]:
        if not word[0].isalnum():
            return "PUNCT"
        if word in ("who", "which") or (word == "that" and previous == "NOUN"):
            return "REL"
        if word in _WH_WORDS:
            return "WH"
        if word == "there" and following in _AUXILIARIES:
            return "EXPL"
        if word == "her" and not _is_closed_class(following):
            return "DET"  # possessive: "brushing her hair"
        if word in PERSONAL_PRONOUNS or word in ("each", "other", "we", "i", "you"):
            return "PRON"
        if word in COUNT_WORDS or word in _NUMBER_WORDS or word[0].isdigit():
            return "NUM"
        if word in _DETERMINERS:
            return "DET"
        if word == "to":
            takes_verb = "VERB" in self._candidates(following) and not _is_closed_class(following)
            return "TO" if takes_verb else "PREP"
        if word in _AUXILIARIES:
            return "AUX"
        if word in _CONJUNCTIONS:
            return "CONJ"
        if word in INDEFINITE_OBJECT_PRONOUNS:
            return "NOUN"
        if word in PARTICLES and previous in ("VERB", "PART", "PRON"):
            if word in _STRONG_PARTICLES or following in ("", "and", ",") or following in _PREPOSITIONS:
                return "PART"
            return "PREP"
        if word in _PREPOSITIONS:
            return "PREP"
        if word in _CLOSED_ADVERBS or (word.endswith("ly") and len(word) > 4 and word not in _ADJECTIVES):
            return "ADV"
        return None

    def _open_tag(self, word: str, previous: Optional[str], previous_word: str, following: str,
                  tags: list[str], finite_verb_in_clause: bool, coordinated_subject: bool) -> str:
        candidates = self._candidates(word)
        verb_possible = "VERB" in candidates or word.endswith("ing")
        noun_possible = "NOUN" in candidates or "PROPN" in candidates or not candidates
        adjective_possible = word in _ADJECTIVES or "ADJ" in candidates
        modifies_next = not _is_closed_class(following)
        after_existential = previous == "AUX" and len(tags) > 1 and tags[-2] == "EXPL"  # "there are people"
        if previous in ("DET", "NUM", "ADJ") or after_existential:
            return "ADJ" if adjective_possible and modifies_next else "NOUN"
        if previous in ("AUX", "TO", "REL"):
            if verb_possible:
                return "VERB"
            return "ADJ" if adjective_possible else "NOUN"
        if previous == "PRON" and previous_word in _SUBJECT_PRONOUNS and verb_possible:
            return "VERB"
        if verb_possible and previous in ("NOUN", "ADV", "EXPL", None) and not finite_verb_in_clause:
            plural_subject = previous == "NOUN" and (self._is_plural_noun(previous_word) or coordinated_subject)
            if word.endswith(("s", "ed", "ing")) or plural_subject or not noun_possible:
                return "VERB"
        if verb_possible and previous == "CONJ" and "VERB" in tags and (
            word.endswith(("s", "ed", "ing")) or not noun_possible
        ):
            return "VERB"
        if noun_possible:
            return "NOUN"
        if adjective_possible:
            return "ADJ"
        return "VERB" if verb_possible else "NOUN"


class _RuleClauseReader:
    """Reads tagged words left to right and emits graph nodes (the rule backend's "parser")."""

    def __init__(self, caption: str, words: list[Word], tags: list[str]) -> None:
        self.assembler = GraphAssembler(caption)
        self.words = words
        self.tags = tags
        self.position = 0
        self.clause_has_verb = False

    def _peek(self, offset: int = 0) -> str:
        index = self.position + offset
        return self.tags[index] if index < len(self.tags) else "END"

    def _word(self, offset: int = 0) -> str:
        index = self.position + offset
        return self.words[index].text.lower() if index < len(self.words) else ""

    # -- noun phrases --------------------------------------------------------------------------

    def _noun_phrase(self) -> list[int]:
        """Read ``(DET|NUM|ADJ|NOUN)* NOUN`` (and "group of X"); return its object node(s)."""
        start = end = self.position
        while end < len(self.words) and self.tags[end] in ("DET", "NUM", "ADJ", "NOUN"):
            end += 1
        nouns = [index for index in range(start, end) if self.tags[index] == "NOUN"]
        if not nouns:
            return []
        head = nouns[-1]
        self.position = head + 1
        modifiers = [index for index in range(start, head) if self.tags[index] in ("NUM", "ADJ", "NOUN")]
        if self.words[head].lemma in COLLECTIVE_NOUNS and self._word() == "of":
            saved = self.position
            self.position += 1
            inner = self._noun_phrase()
            if inner:
                for node in inner:
                    for index in modifiers + [head]:
                        self.assembler.add_attribute(node, [self.words[index]], self.words[index].lemma)
                return inner
            self.position = saved
        word = self.words[head]
        node = self.assembler.add_object(word, plural=word.text.lower() != word.lemma)
        for index in modifiers:
            self.assembler.add_attribute(node, [self.words[index]], self.words[index].lemma)
        return [node]

    def _pronoun(self, exclude: Sequence[int] = ()) -> list[int]:
        word = self.words[self.position]
        self.position += 1
        if word.text.lower() in PERSONAL_PRONOUNS:
            return self.assembler.resolve_pronoun(word.text.lower(), word.index, exclude)
        return []

    def _arguments(self, exclude: Sequence[int] = ()) -> list[int]:
        """Coordinated noun phrases or a pronoun at the current position."""
        if self._peek() == "PRON":
            return self._pronoun(exclude)
        nodes = self._noun_phrase()
        while nodes and self._word() in ("and", ",", "or"):
            saved = self.position
            self.position += 1
            if self._word() == "and":
                self.position += 1
            more = self._noun_phrase()
            if not more:
                self.position = saved
                break
            nodes += more
        if len(nodes) > 1:
            indices = sorted(index for index, node in self.assembler.object_node_by_word.items() if node in nodes)
            self.assembler.coordination_groups[indices[0]] = indices
        return nodes

    def _preposition_words(self) -> list[Word]:
        """Consecutive prepositions, folding "in front of" / "on top of"."""
        words = []
        while self._peek() == "PREP":
            words.append(self.words[self.position])
            self.position += 1
            if self._word() in PREPOSITION_NOUNS and self._word(1) == "of":
                words += [self.words[self.position], self.words[self.position + 1]]
                self.position += 2
                break
        return words

    def _noun_preposition(self, heads: list[int]) -> list[int]:
        preposition_words = self._preposition_words()
        objects = self._arguments(heads)
        if objects and preposition_words:
            self.assembler.add_predicate(preposition_words, heads, objects)
        return objects

    # -- clauses -------------------------------------------------------------------------------

    def read(self) -> ParsedTextSceneGraph:
        subjects: list[int] = []  # subject of the current clause
        last_phrase: list[int] = []  # latest noun phrase: participles and relative clauses attach to it
        saved_subjects: list[list[int]] = []
        while self.position < len(self.words):
            tag = self._peek()
            if tag in ("DET", "NUM", "ADJ", "NOUN"):
                nodes = self._arguments()
                if not nodes:
                    self.position += 1
                    continue
                last_phrase = nodes
                followed_by_verb = self._peek() in ("AUX", "VERB") or (
                    self._peek() == "ADV" and self._peek(1) in ("AUX", "VERB")
                )
                if not subjects or followed_by_verb:
                    subjects = nodes
                    self.clause_has_verb = False
            elif tag == "PRON":
                pronoun = self._word()
                nodes = self._pronoun()
                if pronoun in PERSONAL_PRONOUNS and self._peek() in ("AUX", "VERB", "ADV"):
                    subjects = nodes
            elif tag == "REL":
                saved_subjects.append(subjects)
                subjects = last_phrase or subjects
                self.clause_has_verb = False
                self.position += 1
            elif tag == "EXPL":
                self.position += 1
                while self._peek() == "AUX":
                    self.position += 1
                subjects = last_phrase = self._arguments()
            elif tag in ("AUX", "VERB", "ADV"):
                subjects, last_phrase = self._verb_phrase(subjects, last_phrase, saved_subjects)
            elif tag == "PREP" and last_phrase:
                last_phrase = self._noun_preposition(last_phrase) or last_phrase
            else:
                self.position += 1
        return self.assembler.graph

    def _skip_adverbs(self, adverbs: list[Word]) -> None:
        while self._peek() == "ADV":
            adverbs.append(self.words[self.position])
            self.position += 1

    def _copula(self, subjects: list[int]) -> None:
        """"the man is happy" (attributes), "a man is on the stage" (a preposition predicate)."""
        if self._peek() == "ADJ":
            while self._peek() in ("ADJ", "CONJ"):
                if self._peek() == "ADJ":
                    word = self.words[self.position]
                    for subject in subjects:
                        self.assembler.add_attribute(subject, [word], word.lemma)
                self.position += 1
        elif self._peek() == "PREP" and subjects:
            self._noun_preposition(subjects)

    def _verb_phrase(
        self, subjects: list[int], last_phrase: list[int], saved_subjects: list[list[int]]
    ) -> tuple[list[int], list[int]]:
        auxiliaries: list[str] = []
        adverbs: list[Word] = []
        while self._peek() in ("AUX", "ADV"):
            if self._peek() == "ADV":
                adverbs.append(self.words[self.position])
            else:
                auxiliaries.append(self._word())
            self.position += 1
        if self._peek() != "VERB":
            if auxiliaries:
                self._copula(subjects)
            return subjects, last_phrase
        verb = self.words[self.position]
        participle = (
            not auxiliaries and verb.text.lower().endswith("ing") and bool(last_phrase)
            and last_phrase != subjects and not self.clause_has_verb
        )
        if participle:
            saved_subjects.append(subjects)
            subjects = last_phrase
        self.clause_has_verb = True
        passive = bool(auxiliaries) and auxiliaries[-1] in _BE_FORMS and not verb.text.lower().endswith(("ing", "s"))
        self.position += 1
        if verb.lemma in LIGHT_VERBS and self._peek() in ("TO", "VERB"):
            self.position += self._peek() == "TO"
            return self._verb_phrase(subjects, last_phrase, saved_subjects)
        verb_words = [verb]
        while self._peek() == "PART":
            verb_words.append(self.words[self.position])
            self.position += 1
        objects: list[int] = []
        if self._peek() in ("DET", "NUM", "ADJ", "NOUN", "PRON"):
            objects = self._arguments(exclude=subjects)
            last_phrase = objects or last_phrase
            while self._peek() == "PART":
                verb_words.append(self.words[self.position])
                self.position += 1
        self._skip_adverbs(adverbs)
        agents: list[int] = []
        prepositional: list[tuple[list[Word], list[int]]] = []
        while self._peek() == "PREP":
            if self._word() == "of" and self.tags[self.position - 1] == "NOUN" and last_phrase:
                last_phrase = self._noun_preposition(last_phrase) or last_phrase
                continue
            if passive and self._word() == "by":
                self.position += 1
                agents = self._arguments()
                continue
            preposition_words = self._preposition_words()
            prepositional_objects = self._arguments(exclude=subjects)
            if prepositional_objects:
                prepositional.append((preposition_words, prepositional_objects))
                last_phrase = prepositional_objects
            self._skip_adverbs(adverbs)
        if passive:
            objects, subjects_here = subjects + objects, agents
        else:
            subjects_here = subjects
        for preposition_words, prepositional_objects in prepositional:
            self.assembler.add_predicate(verb_words + preposition_words, subjects_here, prepositional_objects, adverbs)
        if objects or not prepositional:
            self.assembler.add_predicate(verb_words, subjects_here, objects, adverbs)
        if self._peek() == "WH" and self._peek(1) == "TO":
            self.position += 1  # "shows how to make": the complement shares the subject
        if self._peek() == "TO" and self._peek(1) == "VERB":
            self.position += 1
            return self._verb_phrase(subjects, last_phrase, saved_subjects)
        if participle or (saved_subjects and self._peek() in ("AUX", "VERB")):
            subjects = saved_subjects.pop() if saved_subjects else subjects
            self.clause_has_verb = False
        return subjects, last_phrase


__all__ = ["RuleBackend"]
