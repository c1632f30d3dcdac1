"""Noun phrases: turn words like "all the small red blocks left of the bowl" into an `ObjectRef`.

Tolerant by design: articles, quantifiers, sizes and colours may come in any order, synonyms are mapped
onto the suite's vocabulary, and an adjective we cannot read is kept as `unknown` so the grounding step
can answer "I don't see a magenta block" instead of silently dropping it.
"""
from __future__ import annotations

from vla.agent.planner import lexicon as lx
from vla.agent.planner.steps import ObjectRef

_SKIP = {"of", "on", "the", "top"}  # "all of the", "each of the"
_STOPWORDS = {"and", "or", "with", "to", "is", "are", "that", "which", "who", "there", "up", "down", "back",
              "over", "here", "again", "too", "as", "well", "where", "currently", "now", "table", "still"}


def starts_phrase(word: str) -> bool:
    """True when a noun phrase can begin with `word`."""
    return (word in lx.ARTICLES or word in lx.QUANTIFIERS or word in lx.PRONOUNS or word in ("other", "another",
            "same") or lx.canonical_color(word) is not None or word in lx.SIZE_WORDS
            or lx.canonical_shape(word) is not None or word in lx.ANY_SHAPE)


def parse_phrase(words: list[str]) -> ObjectRef | None:
    """An ObjectRef for a list of words, or None when they name no object at all."""
    words = [w for w in words if w]
    if not words:
        return None
    text = " ".join(words)
    relation = None
    for rel in ("left of", "right of"):
        if f" {rel} " in f" {text} ":
            head, tail = f" {text} ".split(f" {rel} ", 1)
            landmark = parse_phrase(tail.split())
            head_words = [w for w in head.split() if w != "to"]
            if head_words and head_words[-1] == "the":
                head_words = head_words[:-1]
            if landmark is not None:
                relation = (rel, landmark)
                words = head_words
            break
    ref = _parse_simple(words, text)
    if ref is None:
        return None
    if relation is not None:
        ref = ObjectRef(ref.text, ref.color, ref.shape, ref.size, ref.quantity, ref.pronoun, relation, ref.unknown)
    return ref


def _parse_simple(words: list[str], text: str) -> ObjectRef | None:
    color = shape = size = pronoun = unknown = None
    quantity, plural, noun_seen = "one", False, False
    for i, word in enumerate(words):
        if word in lx.QUANTIFIERS:
            quantity = "all"
            if word == "everything":
                noun_seen = True
        elif word in ("other", "another"):
            pronoun = "other"
        elif word in ("itself", "themselves"):
            pronoun, noun_seen = "self", True
        elif word == "same":
            pronoun = "it"
        elif word in lx.PRONOUNS and not noun_seen and _alone(words, i):
            pronoun = pronoun or lx.PRONOUNS[word]
            plural = plural or lx.PRONOUNS[word] == "them"
            noun_seen = True
        elif word in lx.ARTICLES or word in _SKIP:
            continue
        elif lx.canonical_color(word) is not None:
            color = lx.canonical_color(word)
        elif word in lx.SIZE_WORDS:
            size = lx.SIZE_WORDS[word]
        elif lx.canonical_shape(word) is not None:
            shape, noun_seen = lx.canonical_shape(word), True
            plural = plural or lx.is_plural(word)
        elif word in lx.ANY_SHAPE:
            noun_seen, plural = True, plural or lx.is_plural(word)
        elif word in _STOPWORDS or word in lx.SIDE_WORDS:
            continue
        elif not noun_seen and unknown is None and _before_noun(words, i):
            unknown = word
    if not (noun_seen or color or size):
        return None
    if plural and pronoun != "them" and quantity == "one" and pronoun is None:
        quantity = "all"
    if pronoun == "them":
        quantity = "all"
    return ObjectRef(text=text, color=color, shape=shape, size=size, quantity=quantity, pronoun=pronoun,
                     unknown=unknown)


def _alone(words: list[str], i: int) -> bool:
    """"that" is a pronoun in "put that in the bowl" but an article in "put that red block ..."."""
    rest = words[i + 1:]
    return not rest or not any(lx.canonical_shape(w) or w in lx.ANY_SHAPE or lx.canonical_color(w) for w in rest[:3])


def _before_noun(words: list[str], i: int) -> bool:
    """True when an unread word sits right before (or between modifiers and) the phrase's noun."""
    for word in words[i + 1:]:
        if lx.canonical_shape(word) or word in lx.ANY_SHAPE:
            return True
        if not (lx.canonical_color(word) or word in lx.SIZE_WORDS):
            return False
    return False


def split_phrases(words: list[str]) -> list[list[str]]:
    """Split "the red block and the blue one, and the cube" into one word list per phrase."""
    groups: list[list[str]] = [[]]
    for word in words:
        if word in ("and", ",", "&", "plus") or (word == "or"):
            if groups[-1]:
                groups.append([])
            continue
        groups[-1].append(word)
    return [g for g in groups if g]


def parse_phrases(words: list[str]) -> list[ObjectRef]:
    """All object references in a word list joined by "and"; a shape named once carries over
    ("the red and the blue blocks" -> two blocks)."""
    refs = [r for r in (parse_phrase(g) for g in split_phrases(words)) if r is not None]
    if len(refs) < 2 or all(r.shape for r in refs):
        return refs
    last = refs[-1]
    shape = next((r.shape for r in reversed(refs) if r.shape), None)
    # "the red and blue blocks": a plural noun shared by several colours means one object of each.
    shared = last.quantity == "all" and not set(last.text.split()) & lx.QUANTIFIERS
    out = []
    for r in refs:
        if r.pronoun is None and (r.shape is None or r is last):
            quantity = "one" if shared else r.quantity
            r = ObjectRef(r.text, r.color, r.shape or shape, r.size, quantity, r.pronoun, r.relation, r.unknown)
        out.append(r)
    return out
