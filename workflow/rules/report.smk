# Tables, plots and results/README.md from the evaluated runs and the measurements.


rule table1:
    localrule: True
    input:
        metrics=metrics_of("table1"),
        latency="results/latency.csv",
    output: "results/table1.csv"
    log: "logs/table1.log"
    conda: CONDA_ENV
    shell: "python -m tinlab table --table table1 --metrics {input.metrics} --latency {input.latency} --out {output} > {log} 2>&1"


for _table in TABLES[1:]:  # table2, table5 where the profile asks for them

    rule:
        name: _table
        localrule: True
        input: metrics_of(_table)
        output: f"results/{_table}.csv"
        params: table=_table
        log: f"logs/{_table}.log"
        conda: CONDA_ENV
        shell: "python -m tinlab table --table {params.table} --metrics {input} --out {output} > {log} 2>&1"


if PROBES:

    rule probes:
        localrule: True
        input:
            metrics=metrics_of("probes"),
            predictions=[m.replace("metrics.json", "metrics.predictions.csv") for m in metrics_of("probes")],
        output: "results/probes.csv"
        log: "logs/probes.log"
        conda: CONDA_ENV
        shell: "python -m tinlab table --table probes --metrics {input.metrics} --out {output} > {log} 2>&1"

    rule probes_plot:
        localrule: True
        input: "results/probes.csv"
        output: [f"results/plots/probes.{ext}" for ext in ("png", "pdf", "svg")]
        log: "logs/probes_plot.log"
        conda: CONDA_ENV
        shell: "python -m tinlab plots --out-dir results/plots --probes {input} > {log} 2>&1"


rule comparisons:
    localrule: True
    input:
        tables=[f"results/{t}.csv" for t in TABLES],
        predictions=[m.replace("metrics.json", "metrics.predictions.csv") for t in TABLES for m in metrics_of(t)],
    output: "results/comparisons.csv"
    log: "logs/comparisons.log"
    conda: CONDA_ENV
    shell: "python -m tinlab compare --tables {input.tables} --out {output} > {log} 2>&1"


rule plots:
    localrule: True
    input:
        table1="results/table1.csv",
        table5=[f"results/table5.csv" for _ in TABLES if _ == "table5"],
        latency="results/latency.csv",
        offsets=[f"{run}/metrics.offsets.csv" for run in _tin_runs().values()],
        summaries=[f"{RUNS}/{name}/train_summary.json" for name in table_variants("table1")],
    output: [f"results/plots/{p}.{ext}" for p in PLOTS for ext in ("png", "pdf", "svg")]
    params:
        offsets=lambda w, input: " ".join(f"{t}={csv}" for t, csv in zip(_tin_runs(), input.offsets)),
    log: "logs/plots.log"
    conda: CONDA_ENV
    shell:
        "python -m tinlab plots --out-dir results/plots --table1 {input.table1} "
        + ("--table5 {input.table5} " if "table5" in TABLES else "")
        + "--latency {input.latency} --summaries {input.summaries} "
        + ("--offsets {params.offsets} " if _tin_runs() else "") + "> {log} 2>&1"


rule summary:
    localrule: True
    input:
        tables=[f"results/{t}.csv" for t in TABLES] + ["results/comparisons.csv", "results/complexity.csv",
                                                        "results/equivalence.csv", "results/latency.csv"],
        plots=[p for p in rules.plots.output if p.endswith(".png")],
    output: "results/README.md"
    params: title=f"tinlab results: {config['experiment']}"
    log: "logs/summary.log"
    conda: CONDA_ENV
    shell: "python -m tinlab summary --tables {input.tables} --plots {input.plots} --title {params.title:q} --out {output} > {log} 2>&1"


if PUBLISHED:

    rule table1_published:
        localrule: True
        input: [f"{RUNS}/{v}/metrics.json" for v in VARIANTS if v.startswith("published-")]
        output: "results/table1_published.csv"
        log: "logs/table1_published.log"
        conda: CONDA_ENV
        shell: "python -m tinlab table --table published --metrics {input} --out {output} > {log} 2>&1"
