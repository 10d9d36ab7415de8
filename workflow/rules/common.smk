# Helpers shared by the rules: the training variants each table needs, their run-config overrides,
# and the checks that stop the workflow before anything runs.
import json
import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError

from tinlab.engine.config import ConfigError, config_from_dict
from tinlab.models import default_op_options

RUNS = config["runs_dir"]
DATASETS = config["datasets"]
# Defaults of the ops whose options the TIN ablation varies: a variant only names what differs.
TIN_DEFAULTS = default_op_options("tin")


def _check_config():
    """Fail at parse time, naming the key or value, for what the JSON schema cannot see."""
    for table, key in (("table1", "dataset"), ("table5", "dataset")):
        if config[table][key] not in DATASETS:
            raise WorkflowError(f"config: {table}.{key} = {config[table][key]!r} is not under 'datasets' "
                                f"(known: {sorted(DATASETS)})")
    for name in config["table2"]["datasets"]:
        if name not in DATASETS:
            raise WorkflowError(f"config: table2.datasets has {name!r}, not under 'datasets' ({sorted(DATASETS)})")
    for name, spec in DATASETS.items():
        if "generate" not in spec and not Path(spec["root"]).is_dir():
            raise WorkflowError(f"config: datasets.{name}.root = {spec['root']!r} does not exist; point it at "
                                f"the dataset's frames and list files (README: 'Bring your own data')")
    try:  # the engine's own validation of the base run config (unknown keys, types, names)
        config_from_dict(config["base"], "config: base")
    except ConfigError as e:
        raise WorkflowError(str(e)) from None


_check_config()


def variant_name(model, frames, dataset, options=None):
    """Canonical run name: model, the options that differ from the defaults, frames, dataset."""
    parts = [model]
    for key, value in sorted((options or {}).items()):
        if TIN_DEFAULTS.get(key) != value:
            parts.append(f"{key}{str(value).lower()}")
    return f"{'-'.join(parts)}_T{frames}_{dataset}"


def _variant(model, frames, dataset, options=None):
    options = {k: v for k, v in (options or {}).items() if TIN_DEFAULTS.get(k) != v}
    return variant_name(model, frames, dataset, options), dict(model=model, frames=frames, dataset=dataset,
                                                                options=options)


def table_variants(table):
    """name -> spec of every training run a table needs."""
    spec = config[table]
    if table == "table1":
        return dict(_variant(m, t, spec["dataset"]) for m in spec["models"] for t in spec["frames"])
    if table == "table2":
        return dict(_variant(m, spec["frames"], d) for d in spec["datasets"] for m in spec["models"])
    first, *others = spec["boundary"]
    grid = [dict(groups=g, reverse=r, boundary=first) for g in spec["groups"] for r in spec["reverse"]]
    grid += [dict(groups=2, reverse=True, boundary=b) for b in others]
    return dict(_variant("tin", spec["frames"], spec["dataset"], o) for o in grid)


VARIANTS = {**table_variants("table1"), **table_variants("table2"), **table_variants("table5")}


def _flatten(prefix, value):
    if isinstance(value, dict) and prefix != "model.options" and not prefix.startswith("data.preset"):
        for key, sub in value.items():
            yield from _flatten(f"{prefix}.{key}" if prefix else key, sub)
    else:
        yield prefix, value


def train_overrides(wildcards):
    """The --set arguments of one run: the base config, then the variant (shell-quoted)."""
    v = VARIANTS[wildcards.variant]
    ds = DATASETS[v["dataset"]]
    base = json.loads(json.dumps(config["base"]))  # deep copy
    base.setdefault("model", {}).update(name=v["model"], options=v["options"])
    base.setdefault("data", {}).update(dataset=v["dataset"], root=ds["root"], num_segments=v["frames"],
                                       preset=ds.get("preset", {}))
    return " ".join(f"--set {shlex.quote(f'{k}={json.dumps(val)}')}" for k, val in _flatten("", base))


def dataset_marker(name):
    """The file whose existence means the dataset is ready: dataset.json of a generated one, or the
    validation list of a real one (which must already exist)."""
    spec = DATASETS[name]
    if "generate" in spec:
        return f"{spec['root']}/dataset.json"
    from tinlab.data import get_preset

    return str(Path(spec["root"]) / get_preset(name, **spec.get("preset", {})).val_list)


def metrics_of(table):
    return [f"{RUNS}/{name}/metrics.json" for name in table_variants(table)]
