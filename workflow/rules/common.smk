# Helpers shared by the rules: the training variants each table needs, their run configs, and the checks
# that stop the workflow before anything runs.
import json
from pathlib import Path

from snakemake.exceptions import WorkflowError

from tinlab.engine.config import ConfigError, base_for_frames, config_from_dict
from tinlab.registry import PLUGIN_HINT, PLUGINS_ENV, list_models, load_plugins
from tinlab.utils.io import read_yaml


def _load_plugins():
    """The config's plug-ins (files relative to the working folder, or module names), loaded here for the
    parse and named in TINLAB_PLUGINS for every job's tinlab (jobs inherit the environment; a cluster
    job parses this file again and sets it again)."""
    import os

    specs = [str(Path(p).resolve()) if p.endswith(".py") or len(Path(p).parts) > 1 else p
             for p in config.get("plugins", [])]
    try:
        load_plugins(specs)
    except ConfigError as e:
        raise WorkflowError(f"config: plugins: {e}") from None
    inherited = [p for p in os.environ.get(PLUGINS_ENV, "").split(os.pathsep) if p]
    os.environ[PLUGINS_ENV] = os.pathsep.join(dict.fromkeys(inherited + specs))


_load_plugins()

# One software environment for every rule: each rule is `python -m tinlab <command>`, and the tinlab
# install (pyproject.toml / environment.yml) carries what every command needs; per-rule environments
# would each hold the same package.
CONDA_ENV = str(Path(workflow.basedir) / "environment.yml")
RUNS = config["runs_dir"]
DATASETS = config["datasets"]
MODEL_OPTIONS = config.get("model_options", {})
BASE_BY_FRAMES = config.get("base_by_frames", {})
BASE_SEED = config["base"].get("run", {}).get("seed", 0)
LATENCY = config["latency"]
TABLES = [t for t in ("table1", "table2", "table5") if t in config]  # table2 and table5 are optional
# Training processes per run. Above 1, torchrun starts them on the job's node (locally, or inside the SLURM
# allocation, which asks for all of them: the same command everywhere); each process uses train_threads
# threads (torchrun's processes would otherwise inherit the job's total, N x train_threads, each).
TRAIN_PROCS = config["resources"]["processes_per_run"]
TRAIN_LAUNCH = ("python" if TRAIN_PROCS == 1 else
                f"OMP_NUM_THREADS={config['resources']['train_threads']} python -m torch.distributed.run "
                f"--standalone --nproc_per_node {TRAIN_PROCS}")


def _check_config():
    """Fail at parse time, naming the key or value, for what the JSON schema cannot see. Datasets are
    checked here for being configured; whether their files exist is checked only for the datasets the
    requested targets need (dataset_marker), so Table 1 needs Table 1's dataset alone."""
    for path in workflow.configfiles:  # Snakemake's YAML loader keeps the last of two equal keys silently
        try:
            read_yaml(path)
        except ConfigError as e:
            raise WorkflowError(f"config: {e}") from None
    if "probes" in config:
        from tinlab.data.synthetic import PROBE_DATASETS

        for probe in config["probes"]["probes"]:
            if PROBE_DATASETS[probe] not in DATASETS:
                raise WorkflowError(f"config: probes.probes has {probe!r}, whose dataset {PROBE_DATASETS[probe]!r} is "
                                    f"not under 'datasets' (docs/probes.md)")
        for name in set(config["probes"].get("models", [])) - set(list_models()):
            raise WorkflowError(f"config: probes.models: no model {name!r} (registered: {list_models()}; {PLUGIN_HINT})")
    for table in ("table1", "table5", "published"):
        if table in config and config[table]["dataset"] not in DATASETS:
            raise WorkflowError(f"config: {table}.dataset = {config[table]['dataset']!r} is not under 'datasets' "
                                f"(known: {sorted(DATASETS)})")
    for name in config.get("table2", {}).get("datasets", []):
        if name not in DATASETS:
            raise WorkflowError(f"config: table2.datasets has {name!r}, not under 'datasets' ({sorted(DATASETS)})")
    for table in TABLES:
        for name in set(config[table].get("models", [])) - set(list_models()):
            raise WorkflowError(f"config: {table}.models: no model {name!r} (registered: {list_models()}; {PLUGIN_HINT})")
    for name in MODEL_OPTIONS:
        if name not in list_models():
            raise WorkflowError(f"config: model_options.{name}: no model {name!r} (registered: {list_models()}; "
                                f"{PLUGIN_HINT})")
    for t, entry in BASE_BY_FRAMES.items():
        if isinstance(entry, dict) and "seed" in (entry.get("run") or {}):
            raise WorkflowError(f"config: base_by_frames.{t}.run.seed: seeds are set by base.run.seed and "
                                f"table5.seeds, not per number of frames")
    _check_run_configs()


def _check_run_configs():
    """The engine's own validation (unknown keys, types, ranges, model names and options) of every run
    config the tables train, and each model built by its module's own rules, before anything runs."""
    from tinlab.models import check_buildable

    built = set()
    try:
        for name in sorted(VARIANTS):
            cfg = config_from_dict(run_config_of(name), f"config: run config of {name}")
            m = cfg.model
            key = (m.name, json.dumps(m.options, sort_keys=True), m.backbone, m.width_mult, m.small_stem,
                   cfg.data.num_segments)
            # each module's own rules, by building it on the meta device: in the main process only (a
            # cluster job parses this file again; its config was checked when the workflow started)
            if workflow.is_main_process and key not in built:
                built.add(key)
                try:
                    check_buildable(m.name, backbone=m.backbone, num_segments=cfg.data.num_segments,
                                    width_mult=m.width_mult, small_stem=m.small_stem, **m.options)
                except ConfigError as e:
                    raise ConfigError(f"config: run config of {name}: {e}") from None
    except ConfigError as e:
        raise WorkflowError(str(e)) from None


def _non_default(model, options):
    from tinlab.models import default_op_options

    try:
        defaults = default_op_options(model)
    except ValueError as e:
        raise WorkflowError(f"config: {e}") from None
    return {k: v for k, v in sorted({**MODEL_OPTIONS.get(model, {}), **(options or {})}.items())
            if defaults.get(k, object()) != v}


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
    seeds = spec.get("seeds", [BASE_SEED])
    if table == "table1":
        return dict(_variant(m, t, spec["dataset"], seed=s) for m in spec["models"] for t in spec["frames"]
                    for s in seeds)
    if table == "table2":
        return dict(_variant(m, spec["frames"], d, seed=s) for d in spec["datasets"] for m in spec["models"]
                    for s in seeds)
    if table == "probes":  # every listed model on every probe's dataset (direction, appearance: Table 1/2's runs)
        from tinlab.data.synthetic import PROBE_DATASETS

        models = spec.get("models", config["table1"]["models"])
        return dict(_variant(m, spec["frames"], PROBE_DATASETS[p], seed=s) for p in spec["probes"] for m in models
                    for s in seeds)
    first, *others = spec["boundary"]
    common = spec.get("options", {})
    grid = [dict(common, groups=g, reverse=r, boundary=first) for g in spec["groups"] for r in spec["reverse"]]
    grid += [dict(common, groups=2, reverse=True, boundary=b) for b in others]
    return dict(_variant("tin", spec["frames"], spec["dataset"], o, seed) for o in grid for seed in seeds)


VARIANTS = {name: spec for table in TABLES for name, spec in table_variants(table).items()}
PROBES = "probes" in config  # the capability table (results/probes.csv), optional
if PROBES:
    VARIANTS.update(table_variants("probes"))
# Published checkpoints, evaluated without training (docs/library.md: "Check your setup with the published checkpoints").
PUBLISHED = config.get("published")
if PUBLISHED:
    VARIANTS.update({f"published-{m}_T{PUBLISHED['frames']}_{PUBLISHED['dataset']}":
                     dict(model=m, frames=PUBLISHED["frames"], dataset=PUBLISHED["dataset"], options={}, seed=BASE_SEED)
                     for m in PUBLISHED["checkpoints"]})


def published_checkpoint(variant):
    """The user's checkpoint file of a published-* variant (it must exist when that target is asked for)."""
    path = Path(PUBLISHED["checkpoints"][VARIANTS[variant]["model"]])
    if not path.is_file():
        raise WorkflowError(f"config: published.checkpoints.{VARIANTS[variant]['model']} = {str(path)!r} does not "
                            f"exist (docs/library.md: 'Check your setup with the published checkpoints')")
    return str(path)


def run_config_of(variant):
    """The run config of one training job, as the run_config job writes it: the base config with its
    frames' base_by_frames entry merged over it, then the variant's model, data and seed."""
    v = VARIANTS[variant]
    ds = DATASETS[v["dataset"]]
    cfg = json.loads(json.dumps(base_for_frames(config["base"], BASE_BY_FRAMES, v["frames"])))  # deep copy
    cfg.setdefault("model", {}).update(name=v["model"], options=v["options"])
    cfg.setdefault("data", {}).update(dataset=v["dataset"], root=ds["root"], num_segments=v["frames"],
                                      preset=ds.get("preset", {}))
    # The thread count is part of what a CPU run computes: the run config carries it, so that
    # `tinlab train --config <this file>` by hand trains bit-identically to the workflow's job.
    cfg.setdefault("run", {}).update(seed=v["seed"], threads=config["resources"]["train_threads"])
    return cfg


def dataset_marker(name):
    """The file whose existence means the dataset is ready: dataset.json of a generated one, or the
    validation list of a real one, which must already exist (checked only for the datasets the
    requested targets need)."""
    spec = DATASETS[name]
    if "generate" in spec:
        return f"{spec['root']}/dataset.json"
    from tinlab.data import get_preset

    marker = Path(spec["root"]) / get_preset(name, **spec.get("preset", {})).val_list
    if not marker.is_file():
        raise WorkflowError(f"config: datasets.{name}.root = {spec['root']!r}: {marker} does not exist; point it at "
                            f"the dataset's frames and list files (docs/data.md: 'Bring your own data')")
    return str(marker)


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
    """Latency at the experiment's own scale: Table 1's models, with their model_options, and frames on
    the base run config (the options change the command, so a changed option reruns the job)."""
    import shlex

    from tinlab.data import get_preset

    base, lat = config_from_dict(config["base"], "config: base"), LATENCY
    dataset = config["table1"]["dataset"]
    classes = get_preset(dataset, **DATASETS[dataset].get("preset", {})).num_classes
    args = [f"--models {' '.join(config['table1']['models'])}",
            f"--frames {' '.join(map(str, config['table1']['frames']))}",
            f"--backbone {base.model.backbone} --width-mult {base.model.width_mult}",
            f"--size {base.data.input_size} --num-classes {classes or 174}"]
    options = {m: _non_default(m, None) for m in config["table1"]["models"]}
    if any(options.values()):
        args.append(f"--model-options {shlex.quote(json.dumps({m: o for m, o in options.items() if o}, sort_keys=True))}")
    args.append(cli_flags({**lat, "small_stem": base.model.small_stem}, skip=("threads", "trace")))
    return " ".join(args)


def _tin_runs():
    """The TIN runs of Table 1 (its first seed), by number of frames (the paper's Figure 5)."""
    spec = config["table1"]
    if "tin" not in spec["models"]:
        return {}
    seed = spec.get("seeds", [BASE_SEED])[0]  # the first seed's runs
    return {t: f"{RUNS}/{variant_name('tin', t, spec['dataset'], seed=seed)}" for t in spec["frames"]}


_check_config()

PLOTS = ["accuracy_vs_gflops", "training_curves", "latency"] + (["ablation"] if "table5" in config else []) + (
    ["offsets", "weights"] if _tin_runs() else [])
