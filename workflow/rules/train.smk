# Training and evaluation: one run directory per variant (model, options, frames, dataset).


rule train:
    input: lambda w: dataset_marker(VARIANTS[w.variant]["dataset"])
    output: f"{RUNS}/{{variant}}/train_summary.json"
    params:
        overrides=train_overrides,
        out=lambda w: f"{RUNS}/{w.variant}",
    log: "logs/train/{variant}.log"
    conda: CONDA_ENV
    benchmark: "benchmarks/train/{variant}.tsv"
    threads: config["resources"]["train_threads"]
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        gpu=config["resources"]["gpu"],
    shell: "OMP_NUM_THREADS={threads} python -m tinlab train {params.overrides} --out {params.out} --quiet > {log} 2>&1"


rule evaluate:
    input: f"{RUNS}/{{variant}}/train_summary.json"
    output: f"{RUNS}/{{variant}}/metrics.json"
    params: run=lambda w: f"{RUNS}/{w.variant}"
    log: "logs/evaluate/{variant}.log"
    conda: CONDA_ENV
    threads: config["resources"]["train_threads"]
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        gpu=config["resources"]["gpu"],
    shell: "python -m tinlab evaluate --run {params.run} --out {output} > {log} 2>&1"
