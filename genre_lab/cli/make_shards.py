"""`genre-lab shards data=<dataset> [data.<setting>=...] --output DIR [--shard-size N] [--dtype int16]`:
decode a dataset once and write every split's clips as WebDataset tar shards plus `index.json`,
for `data=shards data.url=DIR` (`genre_lab.data.shards`). The dataset is composed as `train`
composes it (`conf/data/`), so the shards hold the clips a training run on it would use: the same
split, sample rate and short-clip rule."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape

from genre_lab.cli.options import command_parser
from genre_lab.cli.refusals import error_line


def parser() -> argparse.ArgumentParser:
    p = command_parser("shards", __doc__)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="Hydra overrides of the dataset: data=<dataset>, data.root=..., data.sample_rate=...")
    p.add_argument("--output", required=True, help="an empty (or new) folder for the shards and index.json")
    p.add_argument("--shard-size", type=int, default=1000, help="clips per shard (default 1000)")
    p.add_argument("--dtype", choices=("float32", "int16"), default="float32",
                   help="samples as float32 (exact) or 16-bit PCM (half the size)")
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    # Imported here: `genre-lab shards --help` needs neither Hydra nor torch.
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from genre_lab import registry
    from genre_lab.config import compose
    from genre_lab.data.shards import write_shards

    try:
        cfg = compose(a.overrides)
        node = OmegaConf.to_container(cfg.data, resolve=True, throw_on_missing=True)
        datamodule = registry.build(node, registry.DATA, "data")
        datamodule.setup()
        index = write_shards(datamodule.splits, datamodule.classes, datamodule.sample_rate, a.output,
                             a.shard_size, a.dtype, datamodule.source.name)
    except (HydraException, OmegaConfBaseException, ValueError, OSError, registry.ConfigSecurityError) as error:
        return error_line(error)
    sizes = ", ".join(f"{name} {len(s['ids'])} clips in {len(s['shards'])} shard(s)" for name, s in index["splits"].items())
    Console().print(f"{escape(a.output)}: {sizes}; {len(index['classes'])} classes at {index['sample_rate']} Hz "
                    f"({index['dtype']}). Train on them: data=shards data.url={escape(a.output)} "
                    f"data.sample_rate={index['sample_rate']}", highlight=False, soft_wrap=True)
    return 0
