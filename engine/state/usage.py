"""Which published feature-group and view versions model versions were trained on.

A version a model version was trained on is *in use*: it must keep its meaning (a breaking change
needs a new version, ``engine.compiler.changes``), stay readable and stay servable, and ``engine
gc`` keeps it. A view version is in use when a model version's training data was read from it; a
group version when a view version in use read it (its spine or a join, as the view's recorded
definition document says: ``joined``).

Read from the catalog only (no registry client): the training datasets every registry's models are
trained from, and the local registry's index. Pure queries; SQLite SQL through a ``Catalog``.
"""

from __future__ import annotations

import json

from engine.backends.base import Catalog
from engine.state import metadata, model_index


def view_users(catalog: Catalog) -> dict[tuple[str, int], list[str]]:
    """(view, version) -> the models (``model:NAME@V``, or ``model:NAME`` where only the training
    dataset tells) trained on it, in name order."""
    out: dict[tuple[str, int], set[str]] = {}
    named: set[tuple[str, str, int]] = set()
    for row in model_index.version_rows(catalog):
        try:
            manifest = json.loads(row["manifest"])
        except ValueError:
            continue
        view, version = manifest.get("feature_view"), manifest.get("feature_view_version")
        if view is not None and version is not None:
            out.setdefault((view, int(version)), set()).add(f"model:{row['name']}@{row['version']}")
            named.add((row["name"], view, int(version)))
    if catalog.has_table("_engine", "training_datasets"):
        for model, view, version in catalog.query("SELECT DISTINCT model, feature_view, feature_view_version FROM _engine.training_datasets"):
            if (model, view, int(version)) not in named:  # a registry other than the local index (MLflow)
                out.setdefault((view, int(version)), set()).add(f"model:{model}")
    return {key: sorted(users) for key, users in out.items()}


def versions_in_use(catalog: Catalog, definitions: dict[str, dict] | None = None) -> dict[str, list[str]]:
    """Object key (``feature_view:x@1``, ``feature_group:g@2``) -> the models that use it."""
    definitions = metadata.stored_definitions(catalog) if definitions is None else definitions
    out: dict[str, set[str]] = {}
    for (view, version), users in view_users(catalog).items():
        key = f"feature_view:{view}@{version}"
        out.setdefault(key, set()).update(users)
        for group, group_version in ((definitions.get(key) or {}).get("joined") or {}).items():
            out.setdefault(f"feature_group:{group}@{group_version}", set()).update(users)
    return {key: sorted(users) for key, users in sorted(out.items())}


__all__ = ["versions_in_use", "view_users"]
