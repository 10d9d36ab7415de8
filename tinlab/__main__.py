"""tinlab's command line: ``python -m tinlab <command> ...`` (also installed as ``tinlab``).

Each command lives in the module that implements it, as ``add_arguments(parser)`` and ``run(args)``;
this file only routes. Workflow rules call these commands and nothing else.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "equivalence": ("tinlab.measure.equivalence", "verify TIN == r-TCN forward and backward, write a CSV"),
    "complexity": ("tinlab.measure.complexity", "GFLOPs and parameters of every model at paper scale"),
    "latency": ("tinlab.measure.latency", "latency of models and temporal ops (+ profiler traces)"),
    "table": ("tinlab.report.tables", "a paper-style table (table1, table2, table5) from evaluated runs"),
    "plots": ("tinlab.report.plots", "figures: accuracy vs GFLOPs, ablation, offsets/weights, curves, latency"),
    "summary": ("tinlab.report.summary", "results/README.md: tables rendered, plots embedded"),
    "regress": ("tinlab.report.regress", "compare fresh tables with results/reference: exit 1 on regression"),
    "generate": ("tinlab.data.synthetic", "generate a synthetic dataset in Something-Something layout"),
    "train": ("tinlab.engine.train", "train a model from a YAML config (resumes from its checkpoint)"),
    "evaluate": ("tinlab.engine.evaluate", "evaluate a trained run: top-1/top-5, per-class, twins, offsets"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tinlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            modules[name] = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name is None or not (module == e.name or module.startswith(e.name + ".")):
                raise  # a missing dependency inside the module is a real error
            p.set_defaults(_missing=module)
            continue
        modules[name].add_arguments(p)
    args = parser.parse_args(argv)
    if getattr(args, "_missing", None):
        parser.error(f"command {args.command!r} is not available in this installation ({args._missing})")
    return int(modules[args.command].run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
