# Measurements that need no training: equivalence, complexity at paper scale, latency with traces.


rule equivalence:
    output: "results/equivalence.csv"
    params:
        frames=" ".join(map(str, config["equivalence"]["frames"])),
        groups=" ".join(map(str, config["equivalence"]["groups"])),
    log: "logs/equivalence.log"
    benchmark: "benchmarks/equivalence.tsv"
    conda: CONDA_ENV
    threads: 1
    shell: "python -m tinlab equivalence --out {output} --frames {params.frames} --groups {params.groups} > {log} 2>&1"


rule complexity:
    output: "results/complexity.csv"
    params:
        args=cli_flags(config["complexity"]),
        # every registered model, plug-ins included, named in the command: registering one reruns the job
        models=" ".join(list_models()),
    log: "logs/complexity.log"
    benchmark: "benchmarks/complexity.tsv"
    conda: CONDA_ENV
    threads: 1
    shell: "python -m tinlab complexity --out {output} --models {params.models} {params.args} > {log} 2>&1"


rule latency:
    output:
        csv="results/latency.csv",
        # one profiler trace per model, only when latency.trace is on
        **({"traces": directory("results/traces")} if LATENCY["trace"] else {}),
    params:
        args=_latency_args(),
        threads=LATENCY["threads"],
        trace="--trace-dir results/traces" if LATENCY["trace"] else "",
    log: "logs/latency.log"
    benchmark: "benchmarks/latency.tsv"
    conda: CONDA_ENV
    # Timed code: fixed threads, and nothing else of the workflow runs beside it (all cores held).
    threads: workflow.cores
    resources: gpu=1 if LATENCY["device"].startswith("cuda") else 0
    shell:
        "python -m tinlab latency --out {output.csv} --threads {params.threads} {params.args} "
        "{params.trace} > {log} 2>&1"
