"""The planner's word lists: the task suite's vocabulary plus the synonyms people use for it.

Colours, shapes, sizes and sides come from `vla.envs.vocab` (one source of truth); this file only adds
paraphrases that map onto them ("cube" -> block, "grey" -> gray, "big" -> large) and the verbs and
question words that pick a step's kind.
"""
from __future__ import annotations

from vla.envs import vocab

COLORS: list[str] = list(vocab.COLOR_NAMES)
SHAPES: list[str] = list(vocab.SHAPES)
GRASPABLE: list[str] = list(vocab.GRASPABLE)
SIZES: list[str] = list(vocab.SIZES)
SIDES: list[str] = list(vocab.SIDES)

COLOR_SYNONYMS: dict[str, str] = {"grey": "gray", "violet": "purple", "aqua": "cyan", "turquoise": "cyan",
                                  "teal": "cyan", "scarlet": "red", "crimson": "red", "lime": "green",
                                  "navy": "blue", "golden": "yellow", "gold": "yellow", "rose": "pink"}
SHAPE_WORDS: dict[str, str] = {
    "block": "block", "cube": "block", "box": "block", "brick": "block", "square": "block",
    "cylinder": "cylinder", "can": "cylinder", "tube": "cylinder", "pillar": "cylinder", "puck": "cylinder",
    "bowl": "bowl", "dish": "bowl", "basin": "bowl", "container": "bowl", "bin": "bowl", "cup": "bowl",
}
#: words that stand for "an object" without naming its shape ("the red one", "the red thing").
ANY_SHAPE: set[str] = {"one", "ones", "thing", "things", "object", "objects", "item", "items", "piece", "pieces"}
SIZE_WORDS: dict[str, str] = {"small": "small", "little": "small", "tiny": "small", "smaller": "small",
                              "smallest": "small", "large": "large", "big": "large", "bigger": "large",
                              "biggest": "large", "larger": "large", "largest": "large", "huge": "large"}
SIDE_WORDS: dict[str, str] = {"left": "left", "leftward": "left", "leftwards": "left",
                              "right": "right", "rightward": "right", "rightwards": "right"}

ARTICLES: set[str] = {"the", "a", "an", "this", "that", "these", "those", "my", "your", "some", "any"}
QUANTIFIERS: set[str] = {"all", "every", "each", "both", "everything", "two", "three", "four", "several", "2", "3",
                        "4"}
PRONOUNS: dict[str, str] = {"it": "it", "that": "it", "this": "it", "them": "them", "they": "them",
                            "those": "them", "these": "them"}

# Verb phrases -> manipulation family. Multi-word entries are matched first.
VERBS: dict[str, str] = {
    "pick up": "pick", "pick": "pick", "grab": "pick", "grasp": "pick", "lift": "pick", "raise": "pick",
    "hold": "pick", "take": "put", "get": "pick", "collect": "put",
    "put": "put", "place": "put", "drop": "put", "set": "put", "move": "put", "bring": "put",
    "transfer": "put", "load": "put", "toss": "put", "throw": "put", "deposit": "put", "stick": "put",
    "carry": "put", "relocate": "put", "gather": "put", "tidy": "put", "clear": "put", "pop": "put", "lay": "put",
    "stack": "stack", "pile": "stack", "balance": "stack",
    "push": "push", "slide": "push", "shove": "push", "nudge": "push", "shift": "push", "sweep": "push",
    "reach": "reach", "touch": "reach", "tap": "reach", "approach": "reach", "go to": "reach",
    "move to": "reach", "go over to": "reach", "hover over": "reach", "point at": "reach",
}
INTO: set[str] = {"in", "into", "inside", "within"}
ONTO: set[str] = {"on", "onto", "upon", "atop", "over", "above"}
#: "next to X" / "beside X": a push that ends beside a landmark.
BESIDE: set[str] = {"beside", "alongside", "by"}
#: "to" names a destination whose kind (bowl -> place, block -> stack) the grounding decides.
TOWARD: set[str] = {"to", "toward", "towards"}

# Words and phrases stripped before parsing: politeness and filler that carry no meaning for a plan.
FILLERS: tuple[str, ...] = ("please", "kindly", "could you", "can you", "would you", "will you",
                            "i want you to", "i'd like you to", "i would like you to", "go ahead and",
                            "now", "also", "just", "for me", "robot", "hey", "ok", "okay", "carefully",
                            "quickly", "gently", "first", "finally", "lastly", "and then", "then", "next", "and",
                            "so", "but")
SEPARATORS: tuple[str, ...] = (" and then ", " then ", " after that ", " afterwards ", " afterward ",
                               " next ", " finally ", " once done ", " when you are done ")
NEGATIONS: tuple[str, ...] = ("don't", "do not", "dont", "never", "stop", "avoid", "without moving",
                              "leave", "keep")

RECALL_PATTERNS: tuple[str, ...] = (
    r"what (did|have) you (just )?(do|done|did)", r"what (has |have )?changed", r"what happened",
    r"what('s| is| was) different", r"did (it|that|you|this) (just )?(work|succeed|finish)",
    r"(summari[sz]e|describe|tell me) what (you (just )?did|happened|changed)",
    r"what did you (just )?(move|pick|put|push|stack)", r"how did (it|that) go",
)
LOCATE_PATTERNS: tuple[str, ...] = (r"where('s| is| are| was| were)\b", r"(find|locate|spot)\b",
                                    r"point (to|out)\b", r"show me where\b", r"show me the\b",
                                    r"can you (see|find) where\b", r"look for\b", r"search for\b")
IMAGINE_PATTERNS: tuple[str, ...] = (r"imagine\b", r"draw\b", r"paint\b", r"sketch\b", r"picture\b",
                                     r"generate\b", r"render\b", r"visuali[sz]e\b", r"show me\b",
                                     r"dream up\b", r"make (a|an) (picture|image|drawing)\b")
DESCRIBE_PATTERNS: tuple[str, ...] = (
    r"describe\b", r"what do you see", r"what can you see", r"what('s| is) (left |there |now )*(on|in front of|"
    r"around)? ?(the )?(table|scene|workspace)", r"what('s| is) (left|there)\b", r"what objects",
    r"what (things|items) (are|do you)", r"look around", r"tell me what you see", r"caption",
    r"what('s| is) in front of you", r"what('s| is) (on|in) the scene",
)
QUESTION_STARTS: tuple[str, ...] = ("what", "which", "who", "whose", "why", "how", "is", "are", "was", "were",
                                    "does", "do", "did", "can", "could", "has", "have", "should", "would",
                                    "will", "where", "when", "tell me", "count", "check", "say")
GREETINGS: set[str] = {"hi", "hello", "hey there", "good morning", "thanks", "thank you", "cheers"}


def canonical_color(word: str) -> str | None:
    """`word` as one of the suite's colour names, or None when it is not a colour we know."""
    if word in COLORS:
        return word
    return COLOR_SYNONYMS.get(word)


def canonical_shape(word: str) -> str | None:
    """`word` (singular or plural) as one of the suite's shapes, or None."""
    if word in SHAPE_WORDS:
        return SHAPE_WORDS[word]
    if word.endswith("es") and word[:-2] in SHAPE_WORDS:
        return SHAPE_WORDS[word[:-2]]
    if word.endswith("s") and word[:-1] in SHAPE_WORDS:
        return SHAPE_WORDS[word[:-1]]
    return None


def is_plural(word: str) -> bool:
    return word in ("ones", "things", "objects", "items", "pieces", "them", "these", "those", "they") or (
        canonical_shape(word) is not None and word not in SHAPE_WORDS)
