"""tinlab's command line: ``python -m tinlab <command> ...`` (also installed as ``tinlab``).

Each command lives in the module that implements it, as ``add_arguments(parser)`` and ``run(args)``;
this file only routes, and it is the one place where errors meet the user: a
:class:`~tinlab.errors.UserError` (or an OS error on a named file) is printed as one line naming the
file, key or value and exits with code 2; a run that failed on its own terms
(:class:`~tinlab.errors.TrainingFailed`) exits with 1; ``--debug`` (or ``TINLAB_DEBUG=1``) shows the
traceback instead. Workflow rules call these commands and nothing else.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .errors import TrainingFailed, UserError, one_line

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "equivalence": ("tinlab.measure.equivalence", "verify TIN == r-TCN forward and backward, write a CSV"),
    "complexity": ("tinlab.measure.complexity", "GFLOPs and parameters of every model at paper scale"),
    "latency": ("tinlab.measure.timing", "latency of models and temporal ops (+ profiler traces)"),
    "table": ("tinlab.report.tables", "a paper-style table (table1, table2, table5) from evaluated runs"),
    "plots": ("tinlab.report.plots", "figures: accuracy vs GFLOPs, ablation, offsets/weights, curves, latency"),
    "compare": ("tinlab.report.compare", "paired comparisons with intervals, McNemar and Holm: comparisons.csv"),
    "summary": ("tinlab.report.summary", "results/README.md: tables rendered, plots embedded"),
    "regress": ("tinlab.report.regress", "compare fresh tables with results/reference: exit 1 on regression"),
    "generate": ("tinlab.data.synthetic", "generate a synthetic dataset in Something-Something layout"),
    "train": ("tinlab.engine.train", "train a model from a YAML config (resumes from its checkpoint)"),
    "evaluate": ("tinlab.engine.evaluate", "evaluate a trained run: top-1/top-5, per-class, twins, offsets"),
    "convert": ("tinlab.models.checkpoints", "convert a checkpoint between the official, MMAction2 and tinlab layouts"),
}

EXIT_FAILED, EXIT_USAGE = 1, 2


def _parser() -> tuple[argparse.ArgumentParser, dict]:
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback of an error (also TINLAB_DEBUG=1)")
    parser = argparse.ArgumentParser(prog="tinlab", description=__doc__.splitlines()[0], parents=[debug])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[debug])
        try:
            modules[name] = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name is None or not (module == e.name or module.startswith(e.name + ".")):
                raise  # a missing dependency inside the module is a real error
            p.set_defaults(_missing=module)
            continue
        modules[name].add_arguments(p)
    return parser, modules


def _user_facing(error: BaseException) -> bool:
    """Errors that are the user's input, not tinlab's bug: ours, and OS errors on a named path
    (a folder that is a file, no permission to write there)."""
    return isinstance(error, UserError) or (isinstance(error, OSError) and error.filename is not None)


def main(argv: list[str] | None = None) -> int:
    try:
        parser, modules = _parser()  # lists the registered models: loads the plug-ins (TINLAB_PLUGINS)
    except UserError as e:
        if os.environ.get("TINLAB_DEBUG", "") not in ("", "0") or "--debug" in (sys.argv[1:] if argv is None else argv):
            raise
        print(f"tinlab: error: {one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(argv)
    if getattr(args, "_missing", None):
        parser.error(f"command {args.command!r} is not available in this installation ({args._missing})")
    debug = getattr(args, "debug", False) or os.environ.get("TINLAB_DEBUG", "") not in ("", "0")
    try:
        return int(modules[args.command].run(args) or 0)
    except (UserError, OSError, TrainingFailed) as e:
        if debug or not (_user_facing(e) or isinstance(e, TrainingFailed)):
            raise
        print(f"tinlab {args.command}: error: {one_line(e)}", file=sys.stderr)
        return EXIT_FAILED if isinstance(e, TrainingFailed) else EXIT_USAGE
    except KeyboardInterrupt:
        print(f"tinlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
