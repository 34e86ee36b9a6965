"""Promotion gates: the condition under which a model alias moves to a newly trained version.

A gate is one or more conditions ``[split.]metric OP reference``: ``roc_auc >= current``,
``validation.rmse < current - 0.5``, ``log_loss <= 0.4``. ``current`` is the metric of the version
the alias names now; a number is a fixed bar. Every condition must hold for the alias to move. The
split is ``test`` unless named. Pure: parsing here, evaluation over two versions' metrics in
:func:`evaluate`; the training pipeline moves the alias and reports why it did not.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass

SPLITS = ("test", "validation")

_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_CONDITION = re.compile(
    rf"^\s*(?:(?P<split>[a-z]+)\.)?(?P<metric>[a-z][a-z0-9_]*)\s*(?P<op>>=|<=|==|>|<)\s*"
    rf"(?:(?P<current>current)(?:\s*(?P<sign>[+-])\s*(?P<offset>{_NUMBER}))?|(?P<number>{_NUMBER}))\s*$"
)


@dataclass(frozen=True)
class Condition:
    """``split.metric op (current + offset | bar)``."""

    text: str
    split: str
    metric: str
    op: str
    against_current: bool
    value: float  # the offset from current, or the fixed bar


@dataclass(frozen=True)
class Gate:
    """The conditions an alias waits for (none: it moves to every new version)."""

    alias: str
    conditions: tuple[Condition, ...] = ()


def parse_condition(text: str) -> Condition:
    """One condition; ValueError with what is wrong.

    >>> parse_condition("roc_auc >= current")
    Condition(text='roc_auc >= current', split='test', metric='roc_auc', op='>=', against_current=True, value=0.0)
    >>> parse_condition("validation.rmse < current - 0.5").value
    -0.5
    >>> parse_condition("log_loss <= 0.4").against_current
    False
    """
    match = _CONDITION.match(text)
    if match is None:
        raise ValueError(f"cannot read the condition {text!r}: expected '[split.]metric OP current', '… OP current ± number' or '… OP number' (OP: >=, >, <=, <, ==)")
    split = match["split"] or "test"
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} in {text!r}: use test or validation")
    if match["current"]:
        offset = float(match["offset"] or 0.0)
        value = -offset if match["sign"] == "-" else offset
        return Condition(text.strip(), split, match["metric"], match["op"], True, value)
    return Condition(text.strip(), split, match["metric"], match["op"], False, float(match["number"]))


@dataclass(frozen=True)
class Verdict:
    moves: bool
    reasons: tuple[str, ...]  # one per condition: why it held or not


def evaluate(
    gate: Gate,
    candidate: Mapping[str, Mapping[str, float | None]],
    current: Mapping[str, Mapping[str, float | None]] | None,
    *,
    candidate_ref: str,
    current_ref: str | None,
) -> Verdict:
    """Whether ``gate.alias`` moves to the candidate, given both versions' metrics (split -> metric
    -> value). No current version (the alias names nothing yet): conditions against ``current``
    hold. A metric missing or undefined on the candidate fails its condition; so does a ``current``
    that lacks it (nothing to compare with: the gate does not guess).

    >>> g = Gate("production", (parse_condition("roc_auc >= current"),))
    >>> evaluate(g, {"test": {"roc_auc": 0.71}}, {"test": {"roc_auc": 0.74}}, candidate_ref="m@3", current_ref="m@2").moves
    False
    """
    reasons: list[str] = []
    moves = True
    for c in gate.conditions:
        value = (candidate.get(c.split) or {}).get(c.metric)
        if value is None:
            moves = False
            reasons.append(f"{c.split} {c.metric} of {candidate_ref} is undefined")
            continue
        if c.against_current:
            if current is None or current_ref is None:
                reasons.append(f"{c.text}: no version is {gate.alias} yet")
                continue
            base = (current.get(c.split) or {}).get(c.metric)
            if base is None:
                moves = False
                reasons.append(f"{c.split} {c.metric} of {current_ref} (now {gate.alias}) is undefined, so there is nothing to compare with")
                continue
            bar, against = base + c.value, f"{current_ref}'s {base:.4g}" + (f" {'+' if c.value > 0 else '-'} {abs(c.value):g}" if c.value else "")
        else:
            bar, against = c.value, f"{c.value:g}"
        held = _OPS[c.op](value, bar)
        moves = moves and held
        reasons.append(f"{c.split} {c.metric} {value:.4g} {c.op if held else _NOT[c.op]} {against}")
    return Verdict(moves, tuple(reasons))


_NOT = {">=": "<", ">": "<=", "<=": ">", "<": ">=", "==": "!="}
