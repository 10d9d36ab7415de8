# tinlab: `snakemake --cores all results/table1.csv` (default profile: workflow/config/default.yaml).
# Other profiles: `--configfile workflow/config/smoke.yaml` (tests, CI) or `.../paper.yaml` (GPUs, real
# data); executors: `--workflow-profile workflow/profiles/slurm` or `.../gpu` (README).
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: Path(workflow.basedir) / "workflow/config/default.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


envvars:
    "PATH",  # jobs get the running interpreter's folder prepended (workflow/rules/common.smk)



include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        "results/table1.csv",
        "results/table2.csv",
        "results/table5.csv",
        "results/equivalence.csv",
        "results/complexity.csv",
        "results/latency.csv",
        rules.plots.output,
        "results/README.md",
    default_target: True
