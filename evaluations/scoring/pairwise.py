"""The `pairwise` assertion, pure part: its configuration, the seeded order, the judge's choice, the score.

A pairwise assertion compares the output being scored with a reference output (another arm's, on the
same case) through the judge endpoint::

    {"type": "pairwise", "against": "teacher" | "baseline" | "<endpoint>:<strategy>",
     "rubric": "optional criteria", "weight": 1, "threshold": 0.5}

Judges prefer the answer they read first (position bias). Each (result, reference) pair is shown in an
order drawn from a seed derived from the pair itself (SHA-256 of the run, the case key, the sample and
both arms), so over many cases each arm is shown first about half the time and a positional preference
averages out to a tie instead of passing for a win; the same pair always gets the same order (a re-run
or a re-score asks the same question). The order, the judge's raw reply and the parsed outcome are kept
in the result's score details.

The score, from the point of view of the arm being scored: win 1, tie 0.5, loss 0.

Nothing here imports Django (nor the assertion registry, which imports this module); the judge is
called, the reference found and the verdicts written by services/pairwise.py.
"""

from __future__ import annotations

import hashlib
import re

TYPE = "pairwise"
TEACHER = "teacher"
BASELINE = "baseline"
DEFAULT_THRESHOLD = 0.5  # a tie or a win passes
SCORES = {"win": 1.0, "tie": 0.5, "loss": 0.0}
ORDERS = ("random", "scored-first", "reference-first")  # "random" is the seeded draw; the others fixed
PENDING_REASON = "pending: compared with its reference once every arm's outputs are in"


def parse_against(against: object) -> tuple[str, str, str] | None:
    """("teacher" | "baseline" | "arm", endpoint name, strategy name) or None when not understood."""
    if not isinstance(against, str) or not against.strip():
        return None
    text = against.strip()
    if text in (TEACHER, BASELINE):
        return text, "", ""
    endpoint, sep, strategy = text.partition(":")
    if not sep or not endpoint.strip() or not strategy.strip():
        return None
    return "arm", endpoint.strip(), strategy.strip()


def check(assertion: dict) -> str | None:
    """The pairwise-specific problems of an assertion (`against`, `rubric`, no negation), or None."""
    kind = str(assertion.get("type", "")).strip()
    if kind != TYPE:
        return f"'{kind}': a pairwise comparison cannot be negated (compare against the other arm instead)"
    if parse_against(assertion.get("against")) is None:
        return (
            '\'pairwise\' needs \'against\': "teacher", "baseline" or "<endpoint>:<strategy>" '
            f"(got {assertion.get('against')!r})"
        )
    rubric = assertion.get("rubric")
    if rubric is not None and (not isinstance(rubric, str) or not rubric.strip()):
        return "'pairwise' rubric must be a non-empty text"
    return None


def order_seed(*, run_id: int, case_key: str, sample: int, arm_id: int, reference_arm_id: int) -> str:
    """The pair's seed: SHA-256 of who is compared with whom on what (hex, the first 16 digits)."""
    material = f"ftvp-pairwise|{run_id}|{case_key}|{sample}|{arm_id}|{reference_arm_id}"
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def scored_shown_first(seed: str, order: str = "random") -> bool:
    """Whether the scored arm's answer is shown first (as A): the seed's low bit, or a fixed order."""
    if order == "scored-first":
        return True
    if order == "reference-first":
        return False
    if order != "random":
        raise ValueError(f"order must be one of {', '.join(ORDERS)}")
    return int(seed, 16) % 2 == 0


_JSON_CHOICE = re.compile(r'"(?:winner|choice|answer|verdict|better)"\s*:\s*"([^"]*)"', re.IGNORECASE)
_TIE = re.compile(r"\b(tie|tied|draw|equal(?:ly)?(?: good)?|same|neither|both)\b", re.IGNORECASE)
_LETTER = re.compile(r"(?<![A-Za-z0-9])\(?(A|B)\)?(?![A-Za-z0-9])")
_ANSWER_LETTER = re.compile(r"\banswer\s*\(?([AB])\)?(?![A-Za-z0-9])", re.IGNORECASE)


def _choice_of(token: str) -> str | None:
    token = token.strip().strip(".!*()[]'\"`").strip().upper()
    if token in ("A", "ANSWER A"):
        return "A"
    if token in ("B", "ANSWER B"):
        return "B"
    if token in ("TIE", "TIED", "DRAW", "EQUAL", "BOTH", "NEITHER", "SAME"):
        return "TIE"
    return None


def parse_choice(text: str) -> str:
    """ "A", "B" or "TIE" from the judge's reply; ValueError when it names none or both.

    Read, in order: a JSON field ("winner", "choice"...); the reply alone ("A", "(b)", "Tie."); its
    first line; "Answer A" / "answer B" mentions; a lone capital A or B. A reply naming both letters
    and nothing decisive is refused, not guessed.
    """
    reply = (text or "").strip()
    match = _JSON_CHOICE.search(reply)
    if match:
        choice = _choice_of(match.group(1))
        if choice:
            return choice
    for candidate in (reply, reply.splitlines()[0] if reply else ""):
        choice = _choice_of(candidate)
        if choice:
            return choice
    first = reply.splitlines()[0] if reply else ""
    for line in (first, reply):
        named = {m.upper() for m in _ANSWER_LETTER.findall(line)}
        if len(named) == 1:
            return named.pop()
        letters = set(_LETTER.findall(line))
        if len(letters) == 1 and not _TIE.search(line):
            return letters.pop()
        if not letters and _TIE.search(line):
            return "TIE"
    raise ValueError(f"no choice of A, B or TIE in the judge's reply: {reply[:80]!r}")


def outcome(choice: str, scored_first: bool) -> str:
    """ "win", "tie" or "loss" for the scored arm, given the judge's choice and who was shown as A."""
    if choice == "TIE":
        return "tie"
    if choice not in ("A", "B"):
        raise ValueError(f"unknown choice {choice!r}")
    scored_letter = "A" if scored_first else "B"
    return "win" if choice == scored_letter else "loss"


def verdict(result: str, *, threshold: float | None, reference: str) -> tuple[float, bool, str]:
    """(score, passed, reason) for an outcome: score 1 / 0.5 / 0, passing at the threshold (0.5)."""
    score = SCORES[result]
    limit = DEFAULT_THRESHOLD if threshold is None else threshold
    ok = score >= limit - 1e-9
    words = {"win": "preferred over", "tie": "tied with", "loss": "lost to"}[result]
    return score, ok, f"{words} {reference}"
