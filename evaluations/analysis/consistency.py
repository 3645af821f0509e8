"""Consistency across repeated samples of the same case (runs with repeats > 1).

Per case: how often the samples give the same answer, how much their scores spread, how often they
pass. Per arm: how many cases disagree with themselves, and format compliance across samples.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class SampleRow:
    answer: str | None
    score: float | None = None
    passed: bool | None = None
    format_ok: bool | None = None


def normalise_answer(answer: str | None) -> str:
    """Casefold, collapse runs of whitespace, strip. A missing answer is the empty string."""
    return _SPACE.sub(" ", (answer or "").casefold()).strip()


def _field(sample: Any, name: str):
    # Accept SampleRow, any object with these attributes (e.g. a model instance) or a mapping.
    if isinstance(sample, Mapping):
        return sample.get(name)
    return getattr(sample, name, None)


def case_consistency(samples: Sequence[SampleRow]) -> dict:
    """Agreement of one case's samples.

    - agreement: share of samples whose normalised answer equals the most common one (1.0 when alone);
    - all_agree: every sample gives the same normalised answer;
    - score_sd: population standard deviation (ddof=0) of the scores, None with fewer than 2 scores;
    - pass_rate: share of samples that passed, among those with a pass/fail (None if none has one).
    """
    n = len(samples)
    if n == 0:
        return {
            "n_samples": 0,
            "agreement": None,
            "all_agree": None,
            "majority_answer": None,
            "score_sd": None,
            "pass_rate": None,
        }
    counts = Counter(normalise_answer(_field(s, "answer")) for s in samples)
    majority, top = counts.most_common(1)[0]
    scores = [float(x) for s in samples if (x := _field(s, "score")) is not None]
    passes = [bool(x) for s in samples if (x := _field(s, "passed")) is not None]
    return {
        "n_samples": n,
        "agreement": top / n,
        "all_agree": len(counts) == 1,
        "majority_answer": majority,
        "score_sd": float(np.std(scores, ddof=0)) if len(scores) >= 2 else None,
        "pass_rate": sum(passes) / len(passes) if passes else None,
    }


def arm_consistency(cases: Mapping[Hashable, Sequence[SampleRow]]) -> dict:
    """Consistency of an arm over its cases.

    The agreement figures (share_disagreeing, mean_agreement, mean_score_sd, flaky_pass) are over the
    cases with at least two samples: a single sample cannot disagree with itself. They are None when no
    case has repeats (flaky_pass also when no repeated case has two pass/fail verdicts; mean_score_sd when
    no case has two scores). format_compliance is over every sample of every case that says whether its
    format was valid (None if none does).
    """
    repeated = {k: s for k, s in cases.items() if len(s) >= 2}
    per_case = [case_consistency(s) for s in repeated.values()]
    sds = [c["score_sd"] for c in per_case if c["score_sd"] is not None]
    flaky = []
    for samples in repeated.values():
        verdicts = [bool(x) for s in samples if (x := _field(s, "passed")) is not None]
        if len(verdicts) >= 2:
            flaky.append(len(set(verdicts)) == 2)
    formats = [
        bool(x) for samples in cases.values() for s in samples if (x := _field(s, "format_ok")) is not None
    ]
    n_rep = len(per_case)
    return {
        "cases": len(cases),
        "samples": sum(len(s) for s in cases.values()),
        "cases_with_repeats": n_rep,
        "share_disagreeing": sum(not c["all_agree"] for c in per_case) / n_rep if n_rep else None,
        "mean_agreement": float(np.mean([c["agreement"] for c in per_case])) if n_rep else None,
        "mean_score_sd": float(np.mean(sds)) if sds else None,
        "format_compliance": sum(formats) / len(formats) if formats else None,
        "flaky_pass": sum(flaky) / len(flaky) if flaky else None,
    }
