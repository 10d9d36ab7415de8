# Measurements that need no training: equivalence, complexity at paper scale, latency with traces.


rule equivalence:
    output: "results/equivalence.csv"
    params:
        frames=" ".join(map(str, config["equivalence"].get("frames", [8, 16]))),
        groups=" ".join(map(str, config["equivalence"].get("groups", [1, 2, 4]))),
    log: "logs/equivalence.log"
    threads: 1
    shell: "python -m tinlab equivalence --out {output} --frames {params.frames} --groups {params.groups} > {log} 2>&1"


rule complexity:
    output: "results/complexity.csv"
    params:
        args=" ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in config["complexity"].items() if k != "small_stem"
        ) + (" --small-stem" if config["complexity"].get("small_stem") else ""),
    log: "logs/complexity.log"
    threads: 1
    shell: "python -m tinlab complexity --out {output} {params.args} > {log} 2>&1"


def _latency_args():
    base, lat = config["base"], config["latency"]
    model, data = base.get("model", {}), base.get("data", {})
    args = [f"--models {' '.join(config['table1']['models'])}",
            f"--frames {' '.join(map(str, config['table1']['frames']))}",
            f"--backbone {model.get('backbone', 'resnet50')}", f"--width-mult {model.get('width_mult', 1.0)}",
            f"--size {data.get('input_size', 224)}", f"--batch {lat.get('batch', 1)}",
            f"--rounds {lat.get('rounds', 10)}", f"--warmup {lat.get('warmup', 2)}",
            f"--modes {' '.join(lat.get('modes', ['infer', 'train']))}",
            f"--device {lat.get('device', 'cpu')}", f"--dtype {lat.get('dtype', 'float32')}",
            f"--num-classes {DATASETS[config['table1']['dataset']].get('preset', {}).get('num_classes', 12)}"]
    if model.get("small_stem"):
        args.append("--small-stem")
    return " ".join(args)


rule latency:
    output:
        csv="results/latency.csv",
        traces=directory("results/traces"),
    params:
        args=_latency_args(),
        trace=lambda w, output: f"--trace-dir {output.traces}" if config["latency"].get("trace", True) else "",
    log: "logs/latency.log"
    # Timed code: fixed threads, and nothing else of the workflow runs beside it (all cores held).
    threads: workflow.cores
    resources: gpu=1 if config["latency"].get("device", "cpu").startswith("cuda") else 0
    shell:
        "python -m tinlab latency --out {output.csv} --threads {config[latency][threads]} {params.args} "
        "{params.trace} > {log} 2>&1"
