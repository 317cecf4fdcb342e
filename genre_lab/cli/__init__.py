"""`genre-lab COMMAND [args]`: every entry point behind one command.

Hydra commands (train, sweep, evaluate) take Hydra overrides and flags (`--help` lists their
config groups and common settings, `-m` runs a grid, `--config-dir DIR` adds a folder of your
own configs, `--debug` shows an error's traceback) and genre_lab's own `-v` / `--verbose` (every
metric, not only the headline ones); the others take their own options.
`python -m genre_lab.<command>` still works for each. A new entry point joins by one line in `COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass



@dataclass(frozen=True)
class Command:
    module: str
    summary: str
    #: True: a Hydra command (`genre_lab.cli.hydra_command`; its entry config is `conf/<name>.yaml`);
    #: both kinds are `main(argv) -> int`.
    hydra: bool

    def run(self, name: str, args: list[str]) -> int:
        if self.hydra and any(a in ("-h", "--help") for a in args):
            # From conf/ alone: the command's module (torch, Lightning, MLflow) is not imported.
            from genre_lab.cli.hydra_command import print_help

            return print_help(name, args)
        # Imported on use: `genre-lab --help` stays instant (no torch, no MLflow).
        main = importlib.import_module(self.module).main
        return int(main(args) or 0)


COMMANDS: dict[str, Command] = {
    "train": Command("genre_lab.cli.train", "fit, test and log one model (Hydra overrides; -m for grids)", hydra=True),
    "sweep": Command("genre_lab.cli.sweep", "one Optuna sweep worker (start again to resume, several to share)", hydra=True),
    "evaluate": Command("genre_lab.cli.evaluate", "track-level metrics of a trained model on a dataset split", hydra=True),
    "predict": Command("genre_lab.cli.predict", "tag audio files and folders with a trained model", hydra=False),
    "bench": Command("genre_lab.bench.__main__", "benchmarks: front ends, training, tagging", hydra=False),
    "runs": Command("genre_lab.cli.runs", "training runs with their true state (dead processes found; --mark-dead)", hydra=False),
    "report": Command("genre_lab.cli.report", "mean ± std over seeds and paired tests of an MLflow experiment's runs", hydra=False),
    "ensemble": Command("genre_lab.cli.ensemble", "combine trained models into one ensemble model", hydra=False),
    "explain": Command("genre_lab.cli.explain", "why a model hears a genre: attributions per song", hydra=False),
    "embed": Command("genre_lab.cli.embed", "embeddings of songs from a trained model", hydra=False),
    "probe": Command("genre_lab.cli.probe", "linear probe of a model's embeddings on a dataset (transfer baseline)", hydra=False),
    "audit": Command("genre_lab.cli.audit", "a dataset's duplicates, near-duplicates, leaks, balance, unused files", hydra=False),
    "shards": Command("genre_lab.cli.make_shards", "write a dataset as streamable WebDataset shards (data=shards reads them)", hydra=False),
    "pretrained": Command("genre_lab.cli.pretrained", "convert pretrained music networks (musicnn) to weights", hydra=False),
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="genre-lab",
        description="Music genre classification from raw audio: every genre_lab tool as one command.",
        epilog="`genre-lab COMMAND --help` shows a command's options (Hydra commands: its config groups).",
    )
    p.add_argument("--version", action="store_true", help="print the installed genre_lab version")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub.add_parser(name, help=command.summary, add_help=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        parser().print_help()
        return 0 if args else 2
    if args[0] == "--version":
        from genre_lab.tracking.mlflow_runs import package_version

        print(f"genre_lab {package_version()}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        parser().error(f"unknown command '{name}'; choose from {', '.join(COMMANDS)}")
    return COMMANDS[name].run(name, rest)


if __name__ == "__main__":
    sys.exit(main())
