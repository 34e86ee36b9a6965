"""References parsed in one place: ``name@selector`` model references. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass

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
