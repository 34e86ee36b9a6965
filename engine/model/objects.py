"""Frozen dataclasses for every spec object. Owns no I/O, no DuckDB, no pandas.

Raw dicts stop at ``engine.model.builder``; everything after it works with these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path

from engine.errors import KeyPath
from engine.model.gates import Gate


class Kind(str, Enum):
    SOURCE = "source"
    FEATURE_GROUP = "feature_group"
    FUNCTION = "function"
    FEATURE_VIEW = "feature_view"
    MODEL = "model"
    INFERENCE = "inference"


@dataclass(frozen=True, order=True)
class ObjectId:
    """``kind:name@version`` — the identity of every object."""

    kind: Kind
    name: str
    version: int | None = None

    def __str__(self) -> str:
        base = f"{self.kind.value}:{self.name}"
        return f"{base}@{self.version}" if self.version is not None else base


@dataclass(frozen=True)
class Origin:
    """Where an object was declared: its key path in the spec (positions via the SourceMap)."""

    path: KeyPath


# --- sources ------------------------------------------------------------------------------------


class SourceFormat:
    """The built-in source format names. ``Source.format`` is a plain ``str``: any name registered
    in ``engine.model.formats`` (the registry, open to new formats), so these are constants, not an enum."""

    CSV = "csv"
    PARQUET = "parquet"
    JSONL = "jsonl"


class BadRows(StrEnum):
    """What reading a source does with rows it cannot parse (F6): fail the run, or set them aside."""

    FAIL = "fail"
    QUARANTINE = "quarantine"  # CSV only (DuckDB's rejects tables)


@dataclass(frozen=True)
class CsvOptions:
    delimiter: str = ","
    header: bool = True
    max_line_size: int | None = None  # bytes per line the reader accepts; None: DuckDB's default (2 000 000)
    # values read as NULL, quoted or not; None: an empty unquoted field is NULL, a quoted "" is ''
    null_strings: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Source:
    name: str
    format: str  # a name registered in engine.model.formats (SourceFormat.CSV, ...)
    path: str  # as written (relative to the project root, may be a glob)
    resolved_paths: tuple[Path, ...]  # files it matched at load time (absolute, inside the project)
    timezone: str = "UTC"  # the zone of naive timestamps
    columns: tuple[tuple[str, str], ...] = ()  # declared (name, DuckDB type) pairs
    # A strptime format for every timestamp column (csv, jsonl): with %z every value carries an
    # offset, without it every value is naive; None: each column must be one kind throughout (F4).
    timestamp_format: str | None = None
    csv: CsvOptions = field(default_factory=CsvOptions)
    allow_empty: bool = False
    on_bad_rows: BadRows = BadRows.FAIL
    max_bad_rows: int = 100
    description: str | None = None
    tags: tuple[str, ...] = ()  # free-form labels: `--select tag:NAME`; never part of a fingerprint
    origin: Origin = Origin(())

    @property
    def id(self) -> ObjectId:
        return ObjectId(Kind.SOURCE, self.name)


# --- feature groups -----------------------------------------------------------------------------


class AggFunction(str, Enum):
    """A windowed aggregation function. Adding one: docs/architecture.md, "an aggregation function"."""

    COUNT = "count"
    SUM = "sum"
    MEAN = "mean"
    MIN = "min"
    MAX = "max"
    STD = "std"

    @property
    def numeric_input(self) -> bool:
        """Whether the input column must be numeric (validate checks it)."""
        return AGGREGATION_TYPES[self][0]

    def output_type(self, input_type: str) -> str:
        """The output column's type for an input of ``input_type`` (engine type names)."""
        return AGGREGATION_TYPES[self][1] or input_type


# function -> (needs a numeric input, output type; None: the input's type). The one table semantic
# checks read; the backends map each function to their own aggregate.
AGGREGATION_TYPES: dict[AggFunction, tuple[bool, str | None]] = {
    AggFunction.COUNT: (False, "BIGINT"),
    AggFunction.SUM: (True, None),
    AggFunction.MEAN: (True, "DOUBLE"),
    AggFunction.MIN: (False, None),
    AggFunction.MAX: (False, None),
    AggFunction.STD: (True, "DOUBLE"),
}


@dataclass(frozen=True)
class Aggregation:
    column: str
    function: AggFunction
    window: str  # as written, e.g. "3h"
    window_seconds: int
    name: str  # output column (given or <column>_<function>_<window>)


@dataclass(frozen=True)
class Binning:
    column: str
    name: str  # output column (given or <column>_bin)
    edges: tuple[float, ...] | None = None  # fixed, ascending
    quantiles: int | None = None  # number of equal-frequency bins
    labels: tuple[str, ...] | None = None  # one per bin


@dataclass(frozen=True)
class Pca:
    columns: tuple[str, ...]
    n_components: int
    prefix: str = "pc_"
    keep: tuple[str, ...] = ()


@dataclass(frozen=True)
class SqlTransform:
    sql: str
    sql_file: str | None = None  # relative path, when read from a file
    inputs: tuple[str, ...] = ()  # tables the SELECT reads (sources / feature groups)


@dataclass(frozen=True)
class PythonTransform:
    module: str
    function: str
    inputs: tuple[str, ...]

    @property
    def reference(self) -> str:
        return f"{self.module}:{self.function}"


@dataclass(frozen=True)
class AggregationTransform:
    input: str
    aggregations: tuple[Aggregation, ...]

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)


@dataclass(frozen=True)
class BinningTransform:
    input: str
    bins: tuple[Binning, ...]

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)


@dataclass(frozen=True)
class PcaTransform:
    input: str
    pca: Pca

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)


Transform = SqlTransform | PythonTransform | AggregationTransform | BinningTransform | PcaTransform


class ExpectationKind(str, Enum):
    NOT_NULL = "not_null"
    UNIQUE = "unique"
    BETWEEN = "between"
    IN_SET = "in_set"
    REGEX = "regex"
    ROW_COUNT = "row_count"


@dataclass(frozen=True)
class Expectation:
    kind: ExpectationKind
    column: str | None = None  # None for row_count
    low: float | None = None  # between / row_count min (inclusive)
    high: float | None = None  # between / row_count max (inclusive)
    values: tuple[object, ...] = ()  # in_set
    pattern: str | None = None  # regex
    origin: Origin = Origin(())

    def describe(self) -> str:
        match self.kind:
            case ExpectationKind.NOT_NULL:
                return f"{self.column} not_null"
            case ExpectationKind.UNIQUE:
                return f"{self.column} unique"
            case ExpectationKind.BETWEEN:
                return f"{self.column} between [{_bound(self.low)}, {_bound(self.high)}]"
            case ExpectationKind.IN_SET:
                return f"{self.column} in_set {list(self.values)}"
            case ExpectationKind.REGEX:
                return f"{self.column} regex {self.pattern!r}"
            case ExpectationKind.ROW_COUNT:
                return f"row_count between [{_bound(self.low)}, {_bound(self.high)}]"


def _bound(value: float | None) -> str:
    """A range bound as written: open (None) ends read as such; 10.0 reads as 10."""
    if value is None:
        return "open"
    return str(int(value)) if float(value).is_integer() else str(value)


class Dedupe(str, Enum):
    ERROR = "error"
    LATEST = "latest"


class NonFinite(str, Enum):
    """What a write does with NaN and ±inf in float columns (RELIABILITY F5)."""

    REJECT = "reject"
    NULLIFY = "nullify"
    ALLOW = "allow"


class IncrementalKind(StrEnum):
    """How a feature group processes new input rows (``incremental.kind``)."""

    APPEND = "append"  # row-local: each input row maps to output rows on its own
    BY_TIME = "by_time"  # output rows at t depend on input rows in (t - lookback, t]


class OnLate(StrEnum):
    """What a ``by_time`` group does with a row older than its watermark minus the lookback."""

    FAIL = "fail"
    REBUILD = "rebuild"


@dataclass(frozen=True)
class Incremental:
    """A feature group's incremental declaration (or, for built-in aggregations, the implied one)."""

    kind: IncrementalKind
    lookback: str | None = None  # as written (by_time)
    lookback_seconds: int = 0
    time_column: str | None = None  # the input's time column (default: the group's event_time)


@dataclass(frozen=True)
class FeatureGroup:
    name: str
    version: int
    primary_key: tuple[str, ...]
    transform: Transform
    event_time: str | None = None
    online: bool = True
    expectations: tuple[Expectation, ...] = ()
    dedupe: Dedupe = Dedupe.ERROR
    dedupe_by: str | None = None  # dedupe: {latest_by: COLUMN}: keep the row with the largest COLUMN
    non_finite: NonFinite = NonFinite.REJECT
    incremental: Incremental | None = None  # as declared (SQL groups only)
    on_late: OnLate | None = None  # as written; see late_policy. A policy: never part of a fingerprint
    description: str | None = None
    tags: tuple[str, ...] = ()  # free-form labels: `--select tag:NAME`; never part of a fingerprint
    origin: Origin = Origin(())

    @property
    def id(self) -> ObjectId:
        return ObjectId(Kind.FEATURE_GROUP, self.name, self.version)

    @property
    def late_policy(self) -> OnLate:
        """What a late input row does: as written, else ``fail`` for a declared ``by_time`` group and
        ``rebuild`` for a built-in aggregation (never declared incremental: a late row recomputes
        the affected range, as a full rebuild did before)."""
        if self.on_late is not None:
            return self.on_late
        return OnLate.REBUILD if isinstance(self.transform, AggregationTransform) else OnLate.FAIL

    @property
    def incremental_mode(self) -> Incremental | None:
        """How this group runs incrementally: its declaration, or for built-in windowed aggregations
        ``by_time`` with the largest window as lookback; None (always a full rebuild) otherwise."""
        if isinstance(self.transform, SqlTransform):
            return self.incremental
        if isinstance(self.transform, AggregationTransform) and self.event_time:
            widest = max(self.transform.aggregations, key=lambda a: a.window_seconds)
            return Incremental(IncrementalKind.BY_TIME, widest.window, widest.window_seconds, self.event_time)
        return None

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.transform.inputs


# --- functions, feature views, models, inference -----------------------------------------------


@dataclass(frozen=True)
class Function:
    name: str
    module: str
    function: str
    inputs: tuple[str, ...]
    returns: str
    description: str | None = None
    tags: tuple[str, ...] = ()  # free-form labels: `--select tag:NAME`; never part of a fingerprint
    origin: Origin = Origin(())
    # a built-in instead of Python: ("binning" | "pca", feature group, its output column), applied
    # with the state the group stored with its version (engine.transforms.builtin_functions)
    builtin: tuple[str, str, str] | None = None

    @property
    def id(self) -> ObjectId:
        return ObjectId(Kind.FUNCTION, self.name)

    @property
    def reference(self) -> str:
        """``module:function``, or ``binning:group.column`` for a built-in."""
        return f"{self.builtin[0]}:{self.builtin[1]}.{self.builtin[2]}" if self.builtin else f"{self.module}:{self.function}"


@dataclass(frozen=True)
class Join:
    feature_group: str
    version: int | None  # None: the version declared in this project
    left_on: tuple[str, ...]
    right_on: tuple[str, ...]
    prefix: str = ""
    select: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    ttl: str | None = None
    ttl_seconds: int | None = None
    exclusive: bool = False  # as_of: exclusive — only rows strictly before the spine time
    origin: Origin = Origin(())


@dataclass(frozen=True)
class FeatureView:
    name: str
    version: int
    spine: str
    labels: tuple[str, ...]
    features: tuple[str, ...] = ()
    helpers: tuple[str, ...] = ()
    filter: str | None = None
    joins: tuple[Join, ...] = ()
    on_demand: tuple[str, ...] = ()
    transforms: tuple[tuple[str, "TransformSpec"], ...] = ()  # (column, transformer name or chain)
    description: str | None = None
    tags: tuple[str, ...] = ()  # free-form labels: `--select tag:NAME`; never part of a fingerprint
    origin: Origin = Origin(())

    @property
    def id(self) -> ObjectId:
        return ObjectId(Kind.FEATURE_VIEW, self.name, self.version)


# A column's model-dependent transform: one transformer's name, or a chain of numeric steps
# (kind, parameters) applied in order — ("impute_median", ()), ("clip", (0.0, 100.0)), ("kbins", (5,)).
TransformSpec = str | tuple[tuple[str, tuple], ...]


def transform_text(spec: TransformSpec) -> str:
    """A transform spec as the user reads it: ``standard_scaler``, or
    ``impute_median -> log1p -> clip(0, 100) -> standard_scaler``."""
    if isinstance(spec, str):
        return spec
    return " -> ".join(kind + (f"({', '.join(f'{p:g}' for p in params)})" if params else "") for kind, params in spec)


class SplitKind(StrEnum):
    """How a model's rows are split: on the spine's event time, or at random (seeded)."""

    TIME = "time"
    RANDOM = "random"


@dataclass(frozen=True)
class Split:
    by: SplitKind
    test_from: str | None = None
    validation_from: str | None = None
    test_until: str | None = None  # by: time — the test set is [test_from, test_until); later rows are in no split
    test_size: float | None = None
    validation_size: float | None = None
    seed: int = 0


@dataclass(frozen=True)
class Model:
    name: str
    feature_view: str
    feature_view_version: int | None
    estimator: str
    params: tuple[tuple[str, object], ...] = ()
    split: Split = Split(by=SplitKind.RANDOM, test_size=0.2)
    metrics: tuple[str, ...] = ()
    class_weight: str | tuple[tuple[str, float], ...] | None = None
    aliases: tuple[str, ...] = ()
    gates: tuple[Gate, ...] = ()  # the aliases that move only when their conditions hold
    threshold: float | None = None  # binary classifiers: decide positive when p >= threshold
    threshold_tune: str | None = None  # or: the threshold maximising this metric on the validation split
    features: tuple[str, ...] = ()  # the view's features it uses (default: all)
    exclude: tuple[str, ...] = ()  # or: the view's features it does not use
    transforms: tuple[tuple[str, TransformSpec], ...] = ()  # its own transforms, replacing the view's per column
    description: str | None = None
    tags: tuple[str, ...] = ()  # free-form labels: `--select tag:NAME`; never part of a fingerprint
    origin: Origin = Origin(())

    @property
    def id(self) -> ObjectId:
        return ObjectId(Kind.MODEL, self.name)

    def gate(self, alias: str) -> Gate | None:
        return next((g for g in self.gates if g.alias == alias), None)


class InferenceMode(StrEnum):
    """How an inference job runs: ``apply`` scores a time range (batch) or the rows new since the
    last run (stream); an online job is served over HTTP and never applied."""

    BATCH = "batch"
    STREAM = "stream"
    ONLINE = "online"


@dataclass(frozen=True)
class InferenceJob:
    name: str
    mode: InferenceMode
    model: str  # reference as written: name, name@3, name@latest, name@best:metric, name@alias
    range: tuple[str, str] | None = None
    range_last: str | None = None  # range: {last: 30d} — the window ending at the run's day (hour, ...)
    range_last_seconds: int | None = None
    output_table: str | None = None
    output_path: str | None = None
    source: str | None = None
    keys: tuple[str, ...] = ()
    request: tuple[str, ...] = ()
    description: str | None = None
    tags: tuple[str, ...] = ()  # free-form labels: `--select tag:NAME`; never part of a fingerprint
    origin: Origin = Origin(())
    on_missing: str = "null"  # online: a row without stored features gets null, a prediction, or an error

    @property
    def id(self) -> ObjectId:
        return ObjectId(Kind.INFERENCE, self.name)


@dataclass(frozen=True)
class RegistrySettings:
    """``registry:`` in the spec: where model versions are registered."""

    kind: str = "local"
    tracking_uri: str | None = None  # mlflow; default: the MLFLOW_TRACKING_URI environment variable
    experiment: str = "engine"
    namespace: str = ""


@dataclass(frozen=True)
class BackendSettings:
    """``backend:`` in the spec: the compute backend, when neither ``--backend`` nor
    ``$ENGINE_BACKEND`` names one; ``master`` and ``conf`` are Spark's (its environment overrides them)."""

    kind: str | None = None  # None: not declared (DuckDB unless the command line or environment says otherwise)
    master: str | None = None
    conf: tuple[tuple[str, str], ...] = ()

    def options(self) -> dict[str, object]:
        """What the chosen backend's ``open`` takes from the spec (``spec_options``)."""
        return {"master": self.master, "conf": dict(self.conf)} if self.kind == "spark" else {}


@dataclass(frozen=True)
class Requirement:
    """A declared feature library (``requires``): an installed distribution within a version range."""

    package: str
    version: str | None = None  # a PEP 440 specifier set; None: any version
    origin: Origin = Origin(())


@dataclass(frozen=True)
class Project:
    """The whole typed spec."""

    name: str
    root: Path
    files: tuple[Path, ...]
    sources: dict[str, Source]
    feature_groups: dict[str, FeatureGroup]
    functions: dict[str, Function] = field(default_factory=dict)
    feature_views: dict[str, FeatureView] = field(default_factory=dict)
    models: dict[str, Model] = field(default_factory=dict)
    inference: dict[str, InferenceJob] = field(default_factory=dict)
    retention_seconds: int = 7 * 86_400  # storage.retention: how long replaced commits stay readable
    versioning: str = "manual"  # manual | auto: who numbers the new version a breaking change needs
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    backend: BackendSettings = field(default_factory=BackendSettings)
    requires: tuple[Requirement, ...] = ()  # feature libraries its Python references may name

    def table_names(self) -> set[str]:
        """Names a SQL transform may read: sources and feature groups."""
        return set(self.sources) | set(self.feature_groups)
