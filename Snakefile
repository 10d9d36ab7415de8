# tinlab: `snakemake --cores all results/table1.csv` runs the default experiment (workflow/config/default.yaml).
# A profile is a complete experiment config that REPLACES the default one, nothing is inherited:
#   snakemake --cores all --configfile workflow/config/smoke.yaml     (or ci.yaml, paper.yaml; README)
# Executors: --workflow-profile workflow/profiles/gpu or .../slurm. Run it with the project's Python
# environment active (`make main` does), so that the jobs' `python` is the one with tinlab installed.
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")


if not workflow.overwrite_configfiles:

    configfile: Path(workflow.basedir) / "workflow/config/default.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/report.smk"


wildcard_constraints:
    variant=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",


# Cheap rules (run configs, tables, plots, summary) say `localrule: True`: they run on the submitting
# machine, never as cluster jobs.


rule all:
    localrule: True
    input:
        [f"results/{t}.csv" for t in TABLES],
        "results/comparisons.csv",
        "results/equivalence.csv",
        "results/complexity.csv",
        rules.latency.output,
        rules.plots.output,
        "results/README.md",
        ["results/probes.csv", "results/plots/probes.png"] if PROBES else [],
    default_target: True
