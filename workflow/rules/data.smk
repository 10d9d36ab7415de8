# Data: generate the synthetic datasets (real ones must already exist; checked for the targets that need them).
import os

for _name, _spec in DATASETS.items():
    if "generate" not in _spec:
        continue

    rule:
        name: f"generate_{_name.replace('-', '_')}"
        output: f"{_spec['root']}/dataset.json"
        params:
            name=_name,
            root=lambda w, output: os.path.dirname(output[0]),
            args=cli_flags(_spec["generate"]),
        log: f"logs/generate/{_name}.log"
        benchmark: f"benchmarks/generate/{_name}.tsv"
        conda: CONDA_ENV
        threads: 2
        resources: mem_mb=2000
        shell: "python -m tinlab generate {params.name} --root {params.root} {params.args} --workers {threads} > {log} 2>&1"
