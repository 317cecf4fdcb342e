"""The import rules of docs/architecture.md: which room may import which, no cycles between rooms,
shared basenames only where the note says why, and the two per-module rules (training and the
model writer never load `inference`; the predict path stays light)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import Counter
from pathlib import Path

from genre_lab.config import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "genre_lab"

#: room -> the rooms it may import (docs/architecture.md, "What may import what").
ALLOWED: dict[str, set[str]] = {
    "audio": set(),
    "features": {"audio"},
    "data": {"audio"},
    "tracking": {"data"},
    "reporting": {"tracking"},
    "models": {"audio", "features", "tracking"},
    "training": {"audio", "data", "features", "models", "reporting", "tracking"},
    "inference": {"audio", "data", "models", "reporting", "tracking", "training"},
    "serving": {"audio", "inference", "models"},
    "sweep": {"reporting", "tracking", "training"},
    "bench": {"audio", "data", "features", "inference", "models", "reporting", "serving", "tracking", "training"},
    "cli": {"audio", "data", "features", "inference", "models", "reporting", "serving", "sweep", "tracking", "training"},
}
#: The command shims at the package root: `python -m genre_lab.<command>`.
COMMAND_SHIMS = {"train", "evaluate", "predict", "embed", "explain", "ensemble", "report", "runs", "pretrained"}
#: Root modules -> the rooms they may import; any room may import the root.
ROOT_ALLOWED: dict[str, set[str]] = {
    "__init__": {"inference"}, "__main__": {"cli"}, "config": {"tracking"}, "machine": set(),
    "registry": {"data", "features", "models"}, **{name: {"cli"} for name in COMMAND_SHIMS},
}
#: Modules kept at an old path for what was written before the rooms (docs/architecture.md,
#: "Shims at old paths"): exempt from their room's rules.
OLD_PATH_SHIMS = {"genre_lab.inference.pyfunc", "genre_lab.sweep.__main__"}
#: Basenames two modules share, each the same idea in different rooms (docs/architecture.md).
SHARED_BASENAMES = {"__init__", "__main__", "pyfunc", *COMMAND_SHIMS}


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__"): p
            for p in PACKAGE.rglob("*.py") if "conf" not in p.relative_to(PACKAGE).parts[:1]}


def _room(module: str) -> str | None:
    """`genre_lab.models.loading` -> `models`; a root module -> `root:<name>`; not ours -> None."""
    parts = module.split(".")
    if parts[0] != "genre_lab":
        return None
    if len(parts) == 1:
        return "root:__init__"
    return f"root:{parts[1]}" if (PACKAGE / f"{parts[1]}.py").is_file() else parts[1]


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def _imports(module: str, path: Path) -> set[str]:
    """Every genre_lab module `module` imports, at any depth of its code but `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text(), str(path))
    skip, found = _type_checking_nodes(tree), set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                head = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*head, *([node.module] if node.module else [])])
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from genre_lab.x import module`
    modules = _modules()
    return {name for name in found if name in modules or name == "genre_lab"}


def _room_edges() -> dict[tuple[str, str], set[str]]:
    edges: dict[tuple[str, str], set[str]] = {}
    for module, path in _modules().items():
        if module in OLD_PATH_SHIMS:
            continue
        here = _room(module)
        for imported in _imports(module, path):
            there = _room(imported)
            if there and there != here and not there.startswith("root:"):
                edges.setdefault((here, there), set()).add(f"{module} -> {imported}")
    return edges


def test_every_module_sits_in_a_room_or_is_a_root_module() -> None:
    rooms = {_room(m) for m in _modules()}
    assert {r for r in rooms if not r.startswith("root:")} == set(ALLOWED)
    assert {r.removeprefix("root:") for r in rooms if r.startswith("root:")} == set(ROOT_ALLOWED)


def test_rooms_import_only_what_the_architecture_note_allows() -> None:
    allowed = {**ALLOWED, **{f"root:{name}": rooms for name, rooms in ROOT_ALLOWED.items()}}
    bad = {f"{a} -> {b}": sorted(why) for (a, b), why in _room_edges().items() if b not in allowed[a]}
    assert not bad, bad


def test_no_cycles_between_rooms() -> None:
    graph = {room: set(rooms) for room, rooms in ALLOWED.items()}
    done: list[str] = []
    while graph:
        leaves = [room for room, rooms in graph.items() if not rooms - set(done)]
        assert leaves, f"the rooms {sorted(graph)} import each other"
        done += leaves
        for room in leaves:
            del graph[room]


def test_shared_basenames_are_the_ones_the_note_explains() -> None:
    counts = Counter(path.stem for path in _modules().values())
    assert {name for name, n in counts.items() if n > 1} <= SHARED_BASENAMES


def test_training_and_model_writer_do_not_import_inference() -> None:
    code = ("import sys, genre_lab.training.fit, genre_lab.models.mlflow_model, genre_lab.cli.train; "
            "print(sorted(m for m in sys.modules if m.startswith('genre_lab.inference')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout


def test_tagging_a_file_imports_neither_lightning_nor_mlflow(tmp_path) -> None:
    """The predict command's path (model file -> Tagger -> tags) stays light: Lightning and MLflow
    were ~4 s of its start-up (`python -X importtime`)."""
    from genre_lab.models import model_file as checkpoint
    from genre_lab.bench.tag import default_model
    from tests.conftest import write_tone

    model = default_model()
    ckpt = tmp_path / "model.ckpt"
    checkpoint.write(ckpt, model.spec, model.state_dict())
    song = write_tone(tmp_path / "song.wav", seconds=4.0, sr=16000)
    code = ("import sys, genre_lab.cli.predict\n"
            "from genre_lab.inference import Tagger\n"
            f"result = Tagger.load({str(ckpt)!r}).tag({str(song)!r})\n"
            "assert result.ok and result.genres, result\n"
            "heavy = ('lightning', 'mlflow', 'torchmetrics', 'hydra', 'optuna', 'pandas')\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout
