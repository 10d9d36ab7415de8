# Tables, plots and results/README.md from the evaluated runs and the measurements.


rule table1:
    input:
        metrics=metrics_of("table1"),
        latency="results/latency.csv",
    output: "results/table1.csv"
    log: "logs/table1.log"
    conda: CONDA_ENV
    shell: "python -m tinlab table --table table1 --metrics {input.metrics} --latency {input.latency} --out {output} > {log} 2>&1"


rule table2:
    input: metrics_of("table2")
    output: "results/table2.csv"
    log: "logs/table2.log"
    conda: CONDA_ENV
    shell: "python -m tinlab table --table table2 --metrics {input} --out {output} > {log} 2>&1"


rule table5:
    input: metrics_of("table5")
    output: "results/table5.csv"
    log: "logs/table5.log"
    conda: CONDA_ENV
    shell: "python -m tinlab table --table table5 --metrics {input} --out {output} > {log} 2>&1"


rule plots:
    input:
        table1="results/table1.csv",
        table5="results/table5.csv",
        latency="results/latency.csv",
        metrics=[f"{run}/metrics.json" for run in _tin_runs().values()],
        summaries=[f"{RUNS}/{name}/train_summary.json" for name in table_variants("table1")],
    output: [f"results/plots/{p}.png" for p in PLOTS]
    params:
        offsets=" ".join(f"{t}={run}/metrics.offsets.csv" for t, run in _tin_runs().items()),
    log: "logs/plots.log"
    conda: CONDA_ENV
    shell:
        "python -m tinlab plots --out-dir results/plots --table1 {input.table1} --table5 {input.table5} "
        "--latency {input.latency} --summaries {input.summaries} "
        + ("--offsets {params.offsets} " if _tin_runs() else "") + "> {log} 2>&1"


rule summary:
    input:
        tables=["results/table1.csv", "results/table2.csv", "results/table5.csv", "results/complexity.csv",
                "results/equivalence.csv", "results/latency.csv"],
        plots=rules.plots.output,
    output: "results/README.md"
    params: title=f"tinlab results: {config['experiment']}"
    log: "logs/summary.log"
    conda: CONDA_ENV
    shell: "python -m tinlab summary --tables {input.tables} --plots {input.plots} --title {params.title:q} --out {output} > {log} 2>&1"
