"""The default planner's grammar: a command in plain English -> ungrounded `Step`s.

Small and rule-based on purpose (no model): the command is normalised, split into clauses on "then", "and"
(before a verb), commas and full stops, and each clause is classified by its leading words into one step
kind. Manipulation clauses are read by finding the verb, the destination preposition and the noun phrases
wherever they stand, so word order and paraphrases do not matter much ("into the green bowl, put the red
cube" reads like "put the red block in the green bowl").
"""
from __future__ import annotations

import re

from vla.agent.planner import lexicon as lx
from vla.agent.planner.phrases import parse_phrase, parse_phrases, starts_phrase
from vla.agent.planner.steps import ObjectRef, Step

_CONTRACTIONS = {"what's": "what is", "where's": "where is", "it's": "it is", "that's": "that is",
                 "there's": "there is", "don't": "do not", "dont": "do not", "can't": "cannot",
                 "won't": "will not", "i'd": "i would", "let's": "", "you've": "you have", "didn't": "did not",
                 "isn't": "is not", "aren't": "are not", "how's": "how is", "who's": "who is"}
_VERB_KEYS = sorted(lx.VERBS, key=lambda k: -len(k.split()))
_CLAUSE_STARTS = ({k.split()[0] for k in lx.VERBS} | {w.split()[0] for w in lx.QUESTION_STARTS}
                  | {"tell", "describe", "find", "locate", "show", "imagine", "draw", "where", "please",
                     "leave", "keep", "never", "generate", "paint", "sketch", "look", "point", "spot",
                     "summarize", "summarise", "count"})
_NOT_STARTS = {"set", "can", "box"}  # words that also work as nouns inside a phrase
# Idioms rewritten to the verb they mean before parsing.
_IDIOMS: tuple[tuple[str, str], ...] = (
    (r"\b(move|bring|take|get|send) (the|your) (gripper|hand|arm|fingers?|end effector) (to|towards?|over to|near)\b",
     "reach"),
    (r"\bput your (fingers?|hand|gripper) on\b", "touch"),
    (r"\bkeep (.+?) on the table (and|while you|while) (push|slide|move|shove|nudge)(es|ing)? it\b", r"\3 \1"),
    (r"\btake hold of\b", "grab"),
    (r"\bbuild a (tower|stack) (with|using)\b", "stack"),
    (r"\bto the inside of\b", "into"),
    (r"\bwithout (lifting|picking up) (it|them)\s*,?\s*(move|put|bring|get)?\b", "push"),
    (r"\b(next to|close to|near to|up against|right by|near)\b", "beside"),
    (r"\bon top of\b", "onto"),
    (r"\bin to\b", "into"),
)


def normalize(text: str) -> str:
    """Lower-case, expand contractions, space out punctuation; keeps "," "." ";" "?" "!" as tokens."""
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"[\"`()\[\]{}]", " ", text)
    for short, long in _CONTRACTIONS.items():
        text = re.sub(rf"\b{re.escape(short)}(?=\s|$|[,.;?!])", long, text)
    for pattern, replacement in _IDIOMS:
        text = re.sub(pattern, replacement, text)
    text = re.sub(r"([,.;?!])", r" \1 ", text)
    text = re.sub(r"-", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def split_clauses(text: str) -> list[str]:
    """Clauses in the order they should run; a question clause keeps a trailing "?"."""
    pieces = re.split(r"\s*([.;!?])\s*", text)
    clauses: list[str] = []
    for i in range(0, len(pieces), 2):
        piece, mark = pieces[i], pieces[i + 1] if i + 1 < len(pieces) else ""
        parts = _split_piece(f" {piece} ")
        for k, part in enumerate(parts):  # "A, then is there B?": only the last part is the question
            clauses.append(part + (" ?" if mark == "?" and k == len(parts) - 1 else ""))
    return [c.strip() for c in clauses if c.strip() and c.strip() != "?"]


def _split_piece(piece: str) -> list[str]:
    for marker in (" , but first ", " but first ", " , but before that ", " but before that "):
        if marker in piece:  # "A, but first B" runs B before A
            head, tail = piece.split(marker, 1)
            return _split_piece(f" {tail} ") + _split_piece(f" {head} ")
    piece = piece.replace(" , but ", " | ").replace(" but ", " | ")
    for sep in lx.SEPARATORS:
        piece = piece.replace(sep, " | ").replace(" ," + sep, " | ")
    parts: list[str] = []
    for chunk in piece.split("|"):
        for part in _order_before_after(chunk.strip()):  # "A and B after you C" runs C, then A and B
            parts.extend(_split_on_and(part))
    return parts


def _split_on_and(chunk: str) -> list[str]:
    """Split at "and" / "," only where a new clause begins (a verb or question word follows)."""
    words = chunk.split()
    out, current = [], []
    for i, word in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if (word in ("and", ",") and current and nxt in _CLAUSE_STARTS and nxt not in _NOT_STARTS
                and _can_stand_alone(current)):
            out.append(" ".join(current))
            current = []
            continue
        if word == "," and not current:
            continue
        current.append(word)
    if current:
        out.append(" ".join(current))
    return [c.strip(" ,") for c in out if c.strip(" ,")]


def _can_stand_alone(words: list[str]) -> bool:
    """A clause needs a verb or a question word; "into the green bowl ," is the start of the next clause."""
    return _find_verb(words) is not None or words[0] in _CLAUSE_STARTS


def _order_before_after(clause: str) -> list[str]:
    """"A after you B" -> [B, A]; "A before B" -> [A, B]; "after B , A" -> [B, A]."""
    for word, swap in ((" after ", True), (" before ", False)):
        if word in f" {clause} ":
            head, tail = f" {clause} ".split(word, 1)
            tail = re.sub(r"^(you|you have|you've|having)\s+", "", tail.strip())
            head = head.strip()
            if not head:  # "after B , A"
                if " , " in f" {tail} ":
                    b, a = tail.split(",", 1)
                    return [b.strip(), a.strip()] if swap else [a.strip(), b.strip()]
                return [tail]
            if tail.split() and tail.split()[0] in _CLAUSE_STARTS:
                return [tail, head] if swap else [head, tail]
    return [clause]


def strip_fillers(clause: str) -> str:
    """Remove politeness and sequencing words that carry no meaning for the plan."""
    clause = re.sub(r"\s*\bplease\b\s*", " ", f" {clause} ").strip()
    changed = True
    while changed:
        changed = False
        for filler in lx.FILLERS:
            if clause == filler or clause.startswith(filler + " "):
                nxt = clause[len(filler):].strip()
                # keep "can you see ..." as a question; drop "can you" before an action verb.
                if filler in ("can you", "could you", "would you", "will you") and not _starts_with_verb(nxt):
                    continue
                clause, changed = nxt.strip(" ,"), True
        for filler in ("please", "for me", "now", "thanks", "thank you"):
            if clause.endswith(" " + filler):
                clause, changed = clause[: -len(filler)].strip(" ,"), True
    return re.sub(r"\s+", " ", clause.replace(" please ", " ")).strip(" ,")


def _starts_with_verb(text: str) -> bool:
    return _find_verb(text.split()) == 0


def _find_verb(words: list[str]) -> int | None:
    """Index of the first manipulation verb (multi-word verbs first), or None."""
    for i in range(len(words)):
        for key in _VERB_KEYS:
            parts = key.split()
            if words[i:i + len(parts)] == parts:
                return i
    return None


def _verb_at(words: list[str], i: int) -> tuple[str, int]:
    for key in _VERB_KEYS:
        parts = key.split()
        if words[i:i + len(parts)] == parts:
            return key, len(parts)
    raise ValueError(i)


def parse_clause(clause: str) -> list[Step]:
    """One clause -> its steps (several for "put the red and the blue block in the bowl")."""
    raw = clause
    question_mark = clause.endswith("?")
    clause = strip_fillers(clause.rstrip(" ?").strip())
    if not clause:
        return []
    for pattern in lx.RECALL_PATTERNS:
        if re.search(pattern, clause):
            return [Step("recall", raw, query=clause)]
    negated = False
    m = re.match(r"^(do not|not|never|stop|avoid|leave|keep)\b\s*", clause)
    if m:
        negated, clause = True, clause[m.end():]
    if clause.startswith("tell me "):
        clause = _question_from_tell(clause[len("tell me "):])
        question_mark = True
    for pattern in lx.LOCATE_PATTERNS:
        m = re.match(pattern, clause)
        if m and not negated:
            rest = clause[m.end():].strip()
            ref = parse_phrase(rest.split())
            return [Step("locate", raw, query=rest or clause, refs={"object": ref} if ref else {})]
    for pattern in lx.DESCRIBE_PATTERNS:
        if re.match(pattern, clause) and not negated:
            return [Step("describe", raw, query=clause)]
    for pattern in lx.IMAGINE_PATTERNS:
        m = re.match(pattern, clause)
        if m and not negated:
            return [Step("imagine", raw, query=clause[m.end():].strip() or clause)]
    words = clause.split()
    if negated or _find_verb(words) is not None and (_find_verb(words) == 0 or not _is_question(words)):
        return parse_manipulation(words, raw, negated)
    if question_mark or _is_question(words):
        return [Step("question", raw, query=clause + "?")]
    if clause in lx.GREETINGS or words[0] in lx.GREETINGS:
        return [Step("say", raw, reason="Hello! Tell me what to do, for example: put the red block in the green bowl.")]
    steps = _verbless_put(words, raw)
    if steps:
        return steps
    return [Step("refuse", raw, reason=f"I don't understand {raw.strip(' ?')!r}; try a command like "
                 "'put the red block in the green bowl' or a question like 'what is on the table?'.")]


def _is_question(words: list[str]) -> bool:
    head2 = " ".join(words[:2])
    return words[0] in lx.QUESTION_STARTS or head2 in lx.QUESTION_STARTS


def _question_from_tell(rest: str) -> str:
    """"tell me if there is a red block" -> "is there a red block"."""
    m = re.match(r"^(if|whether) (there|it|the \w+( \w+)?) (is|are|was) (.*)$", rest)
    if m:
        return f"{m.group(4)} {m.group(2)} {m.group(5)}"
    return "what about " + rest[len("about "):] if rest.startswith("about ") else rest


def _verbless_put(words: list[str], raw: str) -> list[Step]:
    """"red block in the green bowl" (no verb): read as a put when a destination is named."""
    if any(_is_prep(w) for w in words) and starts_phrase(words[0]):
        return parse_manipulation(["put"] + words, raw, False)
    return []


def parse_manipulation(words: list[str], raw: str, negated: bool) -> list[Step]:
    """Read verb, objects, destination and side from a manipulation clause, in any order."""
    i = _find_verb(words)
    family, n = ("put", 0) if i is None else (lx.VERBS[_verb_at(words, i)[0]], _verb_at(words, i)[1])
    rest = words[:i] + words[i + n:] if i is not None else list(words)
    rest = [w for w in rest if w not in ("up", "down", "away", "alone", "please", "back")]
    sides = [lx.SIDE_WORDS[w] for j, w in enumerate(rest)
             if w in lx.SIDE_WORDS and (j + 1 >= len(rest) or rest[j + 1] != "of")]
    dests = _destinations(rest)
    obj_words = _object_words(rest, dests)
    refs = parse_phrases(obj_words)
    if any(r.pronoun is None for r in refs):  # "the red block, put it in the bowl": "it" is that block
        refs = [r for r in refs if r.pronoun is None or r.pronoun == "other"]
    if len(set(sides)) > 1:
        return [Step("refuse", raw, reason="I can't push something to the left and to the right at the same "
                                          "time; please pick one side.")]
    if len({d[0].text for d in dests}) > 1 and family != "stack":
        return [Step("refuse", raw, reason="I can't put one object in two places at once; say which "
                                          "destination you want.")]
    side = sides[0] if sides else None
    dest = dests[0] if dests else None
    if family == "stack" and dest is None and len(refs) == 2:
        refs, dest = [refs[0]], (refs[1], "onto")
    if not refs:
        if negated:
            return [Step("manipulate", raw, task=None, negated=True)]
        what = " ".join(rest) or "that"
        return [Step("refuse", raw, reason=f"I don't know which object you mean by {what!r}.")]
    return [_manipulation_step(family, ref, dest, side, raw, negated) for ref in refs]


def _destinations(words: list[str]) -> list[tuple[ObjectRef, str]]:
    """(noun phrase, "into"|"onto") for every preposition followed by a noun phrase."""
    out = []
    for j, word in enumerate(words):
        if _is_prep(word) and not (j + 1 < len(words) and _is_prep(words[j + 1])):  # "over next to X"
            ref = parse_phrase(_phrase_words(words[j + 1:]))
            if ref is not None:
                out.append((ref, "into" if word in lx.INTO else "onto" if word in lx.ONTO
                            else "beside" if word in lx.BESIDE else "to"))
    return out


def _is_prep(word: str) -> bool:
    return word in lx.INTO or word in lx.ONTO or word in lx.TOWARD or word in lx.BESIDE


def _phrase_words(words: list[str]) -> list[str]:
    """The words of the noun phrase at the head of `words` (up to "and", "," or a side word that is not a
    relation: "the green block right of the blue bowl" is one phrase, "the block left" ends at "left")."""
    out = []
    for j, word in enumerate(words):
        relation = j + 1 < len(words) and words[j + 1] == "of"
        if word in ("and", ",", "then") or (word in lx.SIDE_WORDS and out and out[-1] != "the" and not relation):
            break
        out.append(word)
    return out


def _object_words(words: list[str], dests: list[tuple[ObjectRef, str]]) -> list[str]:
    """Words left after removing each destination (preposition + phrase) and side phrases."""
    out, skip = [], 0
    for j, word in enumerate(words):
        if skip:
            skip -= 1
            continue
        if _is_prep(word) and j + 1 < len(words) and _is_prep(words[j + 1]):
            continue
        if _is_prep(word) and parse_phrase(_phrase_words(words[j + 1:])) is not None:
            skip = len(_phrase_words(words[j + 1:]))
            continue
        if word in lx.SIDE_WORDS and (j + 1 >= len(words) or words[j + 1] != "of"):
            while out and out[-1] in ("to", "the", "towards", "toward"):
                out.pop()
            continue
        if word in ("side", "edge") and not out[-1:] == ["the"]:
            continue
        out.append(word)
    return out


def _manipulation_step(family: str, ref: ObjectRef, dest, side, raw: str, negated: bool) -> Step:
    refs = {"object": ref}
    if dest is not None:
        refs["target"] = dest[0]
    if side is not None and family in ("push", "put") and dest is None:
        return Step("manipulate", raw, task="push", refs=refs, side=side, negated=negated)
    if dest is not None and dest[1] == "beside":
        if family in ("push", "put"):  # "push / move X next to Y": the suite's push-next-to task
            return Step("manipulate", raw, task="push", refs=refs, negated=negated)
        refs, dest = {"object": ref}, None  # "pick up the block near the bowl": a description, not a goal
    if dest is not None and family != "reach":
        target, prep = dest
        if family == "stack" or (prep == "onto" and target.shape in lx.GRASPABLE):
            task = "stack"
        elif target.shape == "bowl" or prep == "into":
            task = "put_all" if ref.quantity == "all" else "place"
        else:
            task = "put_on"  # decided at grounding by what the target turns out to be
        return Step("manipulate", raw, task=task, refs=refs, negated=negated)
    if family == "reach":
        return Step("manipulate", raw, task="reach", refs=refs, negated=negated)
    if family == "pick" or (family == "put" and raw.split() and raw.split()[0] in ("take", "get", "collect")):
        return Step("manipulate", raw, task="pick", refs=refs, negated=negated)
    if family == "push":
        return Step("manipulate", raw, task="push", refs=refs, side=None, negated=negated)
    return Step("manipulate", raw, task=None, refs=refs, negated=negated)
