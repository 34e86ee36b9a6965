"""Promotion gates (issue 10, item 5): the condition grammar, and the verdict against a direct
evaluation of the comparison as an oracle."""

from __future__ import annotations

import operator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.model.gates import Condition, Gate, evaluate, parse_condition

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}
metric = st.sampled_from(["roc_auc", "log_loss", "rmse", "precision_at_100", "f1"])
split = st.sampled_from([None, "test", "validation"])
op = st.sampled_from(sorted(OPS))
number = st.floats(-100, 100, allow_nan=False).map(lambda x: round(x, 3))


@given(split=split, metric=metric, op=op, offset=number, against_current=st.booleans(), spaces=st.sampled_from(["", " ", "  "]))
def test_a_written_condition_reads_back_as_written(split, metric, op, offset, against_current, spaces) -> None:
    s = spaces
    lhs = f"{split}.{metric}" if split else metric
    if against_current:
        rhs = "current" if offset == 0 else f"current{s}{'-' if offset < 0 else '+'}{s}{abs(offset)}"
    else:
        rhs = str(offset)
    c = parse_condition(f"{s}{lhs}{s}{op}{s}{rhs}{s}")
    assert (c.split, c.metric, c.op, c.against_current) == (split or "test", metric, op, against_current)
    assert c.value == pytest.approx(offset)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("roc_auc >> current", "cannot read the condition"),
        ("roc_auc >= best", "cannot read the condition"),
        ("train.roc_auc >= current", "unknown split 'train'"),
        ("roc_auc >= current * 2", "cannot read the condition"),
        ("", "cannot read the condition"),
    ],
)
def test_an_unreadable_condition_says_what_is_expected(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_condition(text)


values = st.one_of(st.none(), st.floats(0, 1, allow_nan=False))


@given(
    conditions=st.lists(st.tuples(st.sampled_from(["roc_auc", "log_loss"]), op, st.booleans(), st.floats(-0.5, 0.5, allow_nan=False)), min_size=1, max_size=3),
    candidate=st.fixed_dictionaries({"roc_auc": values, "log_loss": values}),
    current=st.one_of(st.none(), st.fixed_dictionaries({"roc_auc": values, "log_loss": values})),
)
def test_the_alias_moves_exactly_when_every_condition_holds(conditions, candidate, current) -> None:
    gate = Gate("production", tuple(Condition("x", "test", m, o, against, off) for m, o, against, off in conditions))
    verdict = evaluate(gate, {"test": candidate}, None if current is None else {"test": current}, candidate_ref="m@2", current_ref=None if current is None else "m@1")

    def holds(m, o, against, off):
        value = candidate[m]
        if value is None:
            return False  # the candidate cannot show it is good enough
        if not against:
            return OPS[o](value, off)
        if current is None:
            return True  # nothing to beat yet
        if current[m] is None:
            return False  # nothing to compare with: no guess
        return OPS[o](value, current[m] + off)

    assert verdict.moves == all(holds(*c) for c in conditions)
    assert len(verdict.reasons) == len(conditions)


def test_the_reason_names_both_versions_values() -> None:
    gate = Gate("production", (parse_condition("roc_auc >= current"),))
    verdict = evaluate(gate, {"test": {"roc_auc": 0.71}}, {"test": {"roc_auc": 0.74}}, candidate_ref="model:m@3", current_ref="model:m@2")
    assert not verdict.moves
    assert verdict.reasons == ("test roc_auc 0.71 < model:m@2's 0.74",)
