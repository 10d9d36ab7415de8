# Training and evaluation: one run config and one run folder per variant (model, options, frames, dataset, seed).


rule run_config:
    localrule: True
    output: f"{RUNS}/configs/{{variant}}.yaml"
    params: cfg=lambda w: run_config_of(w.variant)
    log: "logs/run_config/{variant}.log"
    run:
        from tinlab.engine.config import config_from_dict, dump_config
        from tinlab.utils.io import atomic_write_text

        # The complete config (recipe values filled in), so the file says exactly what trains.
        atomic_write_text(output[0], dump_config(config_from_dict(params.cfg, f"run config {wildcards.variant}")))


rule train:
    wildcard_constraints: variant=r"(?!published-)[^/]+"
    input:
        config=f"{RUNS}/configs/{{variant}}.yaml",
        data=lambda w: dataset_marker(VARIANTS[w.variant]["dataset"]),
    output: f"{RUNS}/{{variant}}/train_summary.json"
    params: out=lambda w, output: os.path.dirname(output[0])
    log: "logs/train/{variant}.log"
    benchmark: "benchmarks/train/{variant}.tsv"
    conda: CONDA_ENV
    # resources.processes_per_run (N) processes, each with train_threads cores, train_mem_mb and gpu GPUs.
    threads: TRAIN_PROCS * config["resources"]["train_threads"]
    resources:
        mem_mb=TRAIN_PROCS * config["resources"]["train_mem_mb"],
        gpu=TRAIN_PROCS * config["resources"]["gpu"],
    # A changed run config (same run name) trains from scratch; a killed run resumes from its checkpoint.
    shell: f"{TRAIN_LAUNCH} -m tinlab train --config {{input.config}} --out {{params.out}} --restart-if-changed --record-divergence --log-every 30 > {{log}} 2>&1"


rule evaluate_published:
    input:
        config=f"{RUNS}/configs/{{variant}}.yaml",
        checkpoint=lambda w: published_checkpoint(w.variant),
        data=lambda w: dataset_marker(VARIANTS[w.variant]["dataset"]),
    output:
        metrics=f"{RUNS}/{{variant}}/metrics.json",
        offsets=f"{RUNS}/{{variant}}/metrics.offsets.csv",
        predictions=f"{RUNS}/{{variant}}/metrics.predictions.csv",
    wildcard_constraints: variant=r"published-[^/]+"
    log: "logs/evaluate/{variant}.log"
    benchmark: "benchmarks/evaluate/{variant}.tsv"
    conda: CONDA_ENV
    threads: config["resources"]["train_threads"]
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        gpu=config["resources"]["gpu"],
    shell: "python -m tinlab evaluate --config {input.config} --checkpoint {input.checkpoint} --out {output.metrics} > {log} 2>&1"


rule evaluate:
    input: f"{RUNS}/{{variant}}/train_summary.json"
    output:
        metrics=f"{RUNS}/{{variant}}/metrics.json",
        offsets=f"{RUNS}/{{variant}}/metrics.offsets.csv",  # TIN/r-TCN offsets and weights (no rows for others)
        predictions=f"{RUNS}/{{variant}}/metrics.predictions.csv",  # one row per validation video
    wildcard_constraints: variant=r"(?!published-)[^/]+"
    params: run=lambda w, input: os.path.dirname(input[0])
    log: "logs/evaluate/{variant}.log"
    benchmark: "benchmarks/evaluate/{variant}.tsv"
    conda: CONDA_ENV
    threads: config["resources"]["train_threads"]
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        gpu=config["resources"]["gpu"],
    shell: "python -m tinlab evaluate --run {params.run} --out {output.metrics} --record-divergence > {log} 2>&1"
