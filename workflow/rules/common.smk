# Helpers shared by the rules: the training variants each table needs, their run-config overrides,
# and the checks that stop the workflow before anything runs.
import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from tinlab.engine.config import ConfigError, base_for_frames, config_from_dict
from tinlab.models import default_op_options

# Jobs run `python -m tinlab ...` with the interpreter that runs Snakemake (the project's venv), not
# whatever `python` PATH finds first (--use-conda prepends its own environment to PATH instead).
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

# The software environment of every job (with --use-conda): the project's own environment.yml.
CONDA_ENV = str(Path(workflow.basedir) / "environment.yml")
RUNS = config["runs_dir"]
DATASETS = config["datasets"]
MODEL_OPTIONS = config.get("model_options", {})
BASE_BY_FRAMES = config.get("base_by_frames", {})


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
    for t, entry in BASE_BY_FRAMES.items():
        if isinstance(entry, dict) and "seed" in (entry.get("run") or {}):
            raise WorkflowError(f"config: base_by_frames.{t}.run.seed: seeds are set by base.run.seed and "
                                f"table5.seeds, not per number of frames")
    frames = set(config["table1"]["frames"]) | {config["table2"]["frames"], config["table5"]["frames"]}
    try:  # the engine's own validation of every run config (unknown keys, types, names)
        config_from_dict(config["base"], "config: base")
        for t in sorted(frames):
            config_from_dict(base_for_frames(config["base"], BASE_BY_FRAMES, t),
                             f"config: base merged with base_by_frames for {t} frames")
    except ConfigError as e:
        raise WorkflowError(str(e)) from None


_check_config()


def _non_default(model, options):
    defaults = default_op_options(model)
    return {k: v for k, v in sorted({**MODEL_OPTIONS.get(model, {}), **(options or {})}.items())
            if defaults.get(k, object()) != v}


BASE_SEED = config["base"].get("run", {}).get("seed", 0)


def variant_name(model, frames, dataset, options=None, seed=None):
    """Canonical run name: model, the op options that differ from its defaults, the seed if it is not
    the base seed, frames, dataset. Changing a model's option changes its name, so only that model's
    jobs run again."""
    parts = [model] + [f"{k}{str(v).lower()}" for k, v in _non_default(model, options).items()]
    if seed is not None and seed != BASE_SEED:
        parts.append(f"seed{seed}")
    return f"{'-'.join(parts)}_T{frames}_{dataset}"


def _variant(model, frames, dataset, options=None, seed=None):
    return variant_name(model, frames, dataset, options, seed), dict(
        model=model, frames=frames, dataset=dataset, options=_non_default(model, options),
        seed=BASE_SEED if seed is None else seed)


def table_variants(table):
    """name -> spec of every training run a table needs."""
    spec = config[table]
    if table == "table1":
        return dict(_variant(m, t, spec["dataset"]) for m in spec["models"] for t in spec["frames"])
    if table == "table2":
        return dict(_variant(m, spec["frames"], d) for d in spec["datasets"] for m in spec["models"])
    first, *others = spec["boundary"]
    common = spec.get("options", {})
    grid = [dict(common, groups=g, reverse=r, boundary=first) for g in spec["groups"] for r in spec["reverse"]]
    grid += [dict(common, groups=2, reverse=True, boundary=b) for b in others]
    return dict(_variant("tin", spec["frames"], spec["dataset"], o, seed)
                for o in grid for seed in spec.get("seeds", [BASE_SEED]))


VARIANTS = {**table_variants("table1"), **table_variants("table2"), **table_variants("table5")}


def _flatten(prefix, value):
    if isinstance(value, dict) and prefix != "model.options" and not prefix.startswith("data.preset"):
        for key, sub in value.items():
            yield from _flatten(f"{prefix}.{key}" if prefix else key, sub)
    else:
        yield prefix, value


def train_overrides(wildcards):
    """The --set arguments of one run: the base config (with its frames' base_by_frames entry merged
    over it), then the variant (shell-quoted)."""
    v = VARIANTS[wildcards.variant]
    ds = DATASETS[v["dataset"]]
    base = json.loads(json.dumps(base_for_frames(config["base"], BASE_BY_FRAMES, v["frames"])))  # deep copy
    base.setdefault("model", {}).update(name=v["model"], options=v["options"])
    base.setdefault("data", {}).update(dataset=v["dataset"], root=ds["root"], num_segments=v["frames"],
                                       preset=ds.get("preset", {}))
    base.setdefault("run", {}).update(seed=v["seed"])
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


def cli_flags(options, skip=()):
    """A config mapping as command-line flags: ``--key value`` (lists space-separated), a true boolean as
    a bare ``--key``, a false one left out."""
    flags = []
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        if key in skip or value is False:
            continue
        if value is True:
            flags.append(flag)
        else:
            flags.append(f"{flag} {' '.join(map(str, value)) if isinstance(value, list) else value}")
    return " ".join(flags)


def _latency_args():
    """Latency at the experiment's own scale: Table 1's models and frames on the base run config."""
    from tinlab.data import get_preset

    base, lat = config_from_dict(config["base"], "config: base"), config["latency"]
    dataset = config["table1"]["dataset"]
    classes = get_preset(dataset, **DATASETS[dataset].get("preset", {})).num_classes
    args = [f"--models {' '.join(config['table1']['models'])}",
            f"--frames {' '.join(map(str, config['table1']['frames']))}",
            f"--backbone {base.model.backbone} --width-mult {base.model.width_mult}",
            f"--size {base.data.input_size} --num-classes {classes or 174}"]
    args.append(cli_flags({**lat, "small_stem": base.model.small_stem}, skip=("threads", "trace")))
    return " ".join(args)


def _tin_runs():
    """The TIN runs of Table 1, by number of frames (the paper's Figure 5)."""
    spec = config["table1"]
    if "tin" not in spec["models"]:
        return {}
    return {t: f"{RUNS}/{variant_name('tin', t, spec['dataset'])}" for t in spec["frames"]}


PLOTS = ["accuracy_vs_gflops", "ablation", "training_curves", "latency"] + (
    ["offsets", "weights"] if _tin_runs() else [])
