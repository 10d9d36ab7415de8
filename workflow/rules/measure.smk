# Measurements that need no training: equivalence, complexity at paper scale, latency with traces.


rule equivalence:
    output: "results/equivalence.csv"
    params:
        frames=" ".join(map(str, config["equivalence"].get("frames", [8, 16]))),
        groups=" ".join(map(str, config["equivalence"].get("groups", [1, 2, 4]))),
    log: "logs/equivalence.log"
    conda: CONDA_ENV
    threads: 1
    shell: "python -m tinlab equivalence --out {output} --frames {params.frames} --groups {params.groups} > {log} 2>&1"


rule complexity:
    output: "results/complexity.csv"
    params:
        args=cli_flags(config["complexity"]),
    log: "logs/complexity.log"
    conda: CONDA_ENV
    threads: 1
    shell: "python -m tinlab complexity --out {output} {params.args} > {log} 2>&1"


rule latency:
    output:
        csv="results/latency.csv",
        traces=directory("results/traces"),
    params:
        args=_latency_args(),
        threads=config["latency"].get("threads", 2),
        trace=lambda w, output: f"--trace-dir {output.traces}" if config["latency"].get("trace", True) else "",
    log: "logs/latency.log"
    conda: CONDA_ENV
    # Timed code: fixed threads, and nothing else of the workflow runs beside it (all cores held).
    threads: workflow.cores
    resources: gpu=1 if config["latency"].get("device", "cpu").startswith("cuda") else 0
    shell:
        "python -m tinlab latency --out {output.csv} --threads {params.threads} {params.args} "
        "{params.trace} > {log} 2>&1"
