"""Identities and references, parsed in one place: ``name@selector`` model references, and the
direction of every metric (what "best" means). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

# Larger is better, except where False. The one table: training, the registry's ``best:<metric>``
# and serving all read it.
METRIC_HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True, "precision": True, "recall": True, "f1": True, "roc_auc": True, "r2": True,
    "log_loss": False, "mae": False, "mse": False, "rmse": False, "brier_score": False,
}  # fmt: skip


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (unknown metrics: larger is better).

    >>> higher_is_better("roc_auc"), higher_is_better("rmse")
    (True, False)
    """
    return METRIC_HIGHER_IS_BETTER.get(metric, True)


@dataclass(frozen=True)
class ModelRef:
    """``name`` or ``name@selector``: selector is None (latest), a version number, ``latest``,
    ``best:<metric>`` or an alias.

    >>> ModelRef.parse("delay_xgb@best:roc_auc")
    ModelRef(name='delay_xgb', selector='best:roc_auc')
    >>> ModelRef.parse("m").selector is None, str(ModelRef.parse("m@3"))
    (True, 'm@3')
    """

    name: str
    selector: str | None = None

    @classmethod
    def parse(cls, text: str) -> "ModelRef":
        name, _, selector = text.partition("@")
        return cls(name, selector or None)

    def __str__(self) -> str:
        return f"{self.name}@{self.selector}" if self.selector else self.name
