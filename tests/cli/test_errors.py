"""The Hydra commands' errors and help, run as a user runs them (`python -m genre_lab COMMAND`,
what the `genre-lab` script runs): a mistake is one `error:` line naming the setting and the fix,
exit status 2, no traceback unless `--debug`; a failed run leaves no empty run folder; `--help`
lists the groups and common settings without importing torch, Lightning or MLflow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from genre_lab.cli.hydra_command import remove_empty_run_dir
from genre_lab.config import PROJECT_ROOT

RUN_ID = "0123456789abcdef0123456789abcdef"


def genre_lab(*args: str, cwd: Path, env: dict[str, str] | None = None,
              flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """`python -m genre_lab ARGS` from `cwd` (the home: stores and outputs go there)."""
    base = {k: v for k, v in os.environ.items() if k not in ("GENRE_LAB_HOME", "MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR")}
    base.update({"PYTHONWARNINGS": "ignore", "PYTHONPATH": str(PROJECT_ROOT), **(env or {})})
    return subprocess.run([sys.executable, *flags, "-m", "genre_lab", *args], cwd=cwd, env=base,
                          capture_output=True, text=True, timeout=300)


def one_error(proc: subprocess.CompletedProcess[str], *, alone: bool = True) -> str:
    """The `error:` line of a refused command, checked: exit 2, no traceback, no Hydra hint.
    `alone`: nothing else on stderr (errors found before the task runs; later ones may follow
    a library's log line such as Lightning's `Seed set to 42`)."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    if alone:
        assert lines == errors, proc.stderr
    return errors[0]


def no_outputs(home: Path) -> None:
    """A refused command leaves no run folder (nor an empty outputs/ around it)."""
    assert not (home / "outputs").exists(), sorted(str(p.relative_to(home)) for p in (home / "outputs").rglob("*"))


# Found by Hydra while composing, before the task runs (and before the command imports torch,
# Lightning or MLflow: `test_a_bad_override_is_refused_without_heavy_imports`).
@pytest.mark.parametrize("args, expected", [
    (["train", "trainer.max_epoch=2"], "error: no setting trainer.max_epoch; did you mean trainer.max_epochs?"),
    (["train", "model=crn"], "error: no option model=crn; did you mean model=crnn? model is one of ast, cnn, cnnsa, crnn, fcn, "),
    (["train", "nonsense_key=1"], "error: no setting nonsense_key (--cfg job lists every setting)"),
    (["train", "model=["], "error: cannot read the override 'model=['"),
    (["evaluate", "run=x", "spilt=val"], "error: no setting spilt; did you mean split?"),
    (["evaluate", "run=x", "data.root=/x"], "error: no setting data.root: no data config is chosen"),
    (["sweep", "sweep.n_trial=3"], "error: no setting sweep.n_trial; did you mean sweep.n_trials?"),
])
def test_composition_errors_are_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    line = one_error(genre_lab(*args, cwd=tmp_path))
    assert line.startswith(expected), line
    assert "+" not in line  # never Hydra's "To append to your config use +key=value"
    assert "_base" not in line  # private pieces are not options
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, expected", [
    (["train", "data=gtzan"], "error: data.root is not set: pass data.root=/path/to/gtzan (the folder holding genres_original/"),
    (["train", "data=folder"], "error: data.root is not set: pass data.root=/path/to/music"),
    (["train", "data=csv"], "error: data.manifest is not set: pass data.manifest=/path/to/manifest.csv"),
    (["train", "data=fma"], "error: data.root is not set: pass data.root=/path/to/fma (the folder holding fma_metadata/"),
    (["train", "data=jamendo"], "error: data.audio_dir is not set: pass data.audio_dir=/path/to/audio (MTG-Jamendo: "
                                "the folder holding 00/ ... 99/); data.root is not set: pass data.root=/path/to/mtg-jamendo"),
    (["evaluate"], "error: run is not set: pass run=<MLflow run id | checkpoint file"),
])
def test_a_mandatory_setting_left_unset_names_an_example(tmp_path: Path, args: list[str], expected: str) -> None:
    line = one_error(genre_lab(*args, cwd=tmp_path))
    assert line.startswith(expected), line
    no_outputs(tmp_path)


def test_bad_paths_are_one_line_and_leave_no_run_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    line = one_error(genre_lab("train", "data=folder", f"data.root={missing}", cwd=tmp_path), alone=False)
    assert line == f"error: data.root={missing} does not exist or is not a folder"
    no_outputs(tmp_path)

    line = one_error(genre_lab("evaluate", f"run={missing}.ckpt", cwd=tmp_path))
    assert line.startswith(f"error: model '{missing}.ckpt' is not an existing checkpoint file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no"] or list(tmp_path.iterdir()) == []  # no store either


def test_an_unknown_run_names_the_store_it_was_looked_up_in(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # No store yet: evaluate says so, and creates none.
    line = one_error(genre_lab("evaluate", f"run={RUN_ID}", cwd=tmp_path))
    assert line == f"error: no MLflow run '{RUN_ID}' in {store}: that store does not exist"
    assert list(tmp_path.iterdir()) == []

    from mlflow import MlflowClient

    MlflowClient(store).create_experiment("other")  # a store holding other runs
    line = one_error(genre_lab("evaluate", f"run={RUN_ID}", cwd=tmp_path))
    assert line == f"error: no MLflow run '{RUN_ID}' in {store}"
    line = one_error(genre_lab("train", f"resume={RUN_ID}", cwd=tmp_path), alone=False)
    assert line.startswith(f"error: resume={RUN_ID}: no MLflow run {RUN_ID} in {store}")
    line = one_error(genre_lab("train", "resume=not-a-run", cwd=tmp_path), alone=False)
    assert line.startswith("error: resume=not-a-run: no run folder ") and line.endswith(f"to look up in {store}")
    no_outputs(tmp_path)


def test_debug_and_hydra_full_error_show_the_traceback(tmp_path: Path) -> None:
    proc = genre_lab("train", "trainer.max_epoch=2", "--debug", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" in proc.stderr, proc.stderr[-2000:]
    assert "ConfigCompositionException" in proc.stderr and "--debug" not in proc.stderr
    proc = genre_lab("train", "model=crn", cwd=tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "MissingConfigException" in proc.stderr
    # A refusal inside the task too: its exception, not the one line.
    proc = genre_lab("train", "data=folder", f"data.root={tmp_path / 'nope'}", "--debug", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "DataConfigError" in proc.stderr
    no_outputs(tmp_path)


def test_a_run_folder_is_removed_only_when_it_holds_nothing_but_hydras_files(tmp_path: Path) -> None:
    def hydra_run(path: Path, *extra: str) -> Path:
        (path / ".hydra").mkdir(parents=True)
        for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
            (path / ".hydra" / name).write_text("{}\n")
        (path / "train.log").write_text("")
        for name in extra:
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_text("kept")
        return path

    root = tmp_path / "home"
    empty = hydra_run(root / "outputs" / "runs" / "a")
    assert remove_empty_run_dir(empty, "train", root)
    assert not (root / "outputs").exists() and root.is_dir()  # empty parents go, the home stays

    kept = hydra_run(root / "outputs" / "runs" / "b", "checkpoints/last.ckpt")
    assert not remove_empty_run_dir(kept, "train", root) and (kept / "checkpoints" / "last.ckpt").is_file()
    user = hydra_run(root / "outputs" / "runs" / "c", ".hydra/notes.txt")  # not Hydra's file
    assert not remove_empty_run_dir(user, "train", root) and (user / ".hydra" / "notes.txt").is_file()
    other_log = hydra_run(root / "outputs" / "runs" / "d", "evaluate.log")  # not this job's log
    assert not remove_empty_run_dir(other_log, "train", root) and other_log.is_dir()

    # Outside the home: the run folder alone, never the empty folders above it.
    outside = hydra_run(tmp_path / "elsewhere" / "deep" / "run")
    assert remove_empty_run_dir(outside, "train", root)
    assert not outside.exists() and (tmp_path / "elsewhere" / "deep").is_dir()


@pytest.mark.parametrize("command, shown", [
    ("train", ["data:", "synthetic*", "gtzan", "model:", "crnn*", "features:", "logmel*", "trainer:",
               "seed=42", "trainer.max_epochs=", "model.optimizer.lr=", "model.backbone.", "data.root",
               "init_from=null", "resume=null", "--debug"]),
    ("evaluate", ["data:", "gtzan", "run=???", "split=test", "--debug"]),
    ("sweep", ["sweep:", "crnn*", "finetune", "sweep.n_trials=20", "sweep.space.model.optimizer.lr=", "--debug"]),
])
def test_help_lists_groups_and_common_settings_without_heavy_imports(tmp_path: Path, command: str, shown: list[str]) -> None:
    proc = genre_lab(command, "--help", cwd=tmp_path, flags=("-X", "importtime"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    for text in shown:
        assert text in proc.stdout, (text, proc.stdout)
    for private in ("_chunking", "_files", "_files_source", "_base"):
        assert private not in proc.stdout
    assert heavy_imports(proc) == []
    assert list(tmp_path.iterdir()) == []  # asking for help writes nothing


HEAVY = {"torch", "lightning", "mlflow", "optuna", "torchaudio", "pandas"}


def heavy_imports(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """The HEAVY packages a `python -X importtime` process imported (it must have imported some)."""
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert imported, proc.stderr[-2000:]
    return sorted(imported & HEAVY)


@pytest.mark.parametrize("args", [["train", "trainer.max_epoch=2"], ["evaluate", "run=x", "spilt=val"],
                                  ["sweep", "sweep.n_trial=3"]])
def test_a_bad_override_is_refused_without_heavy_imports(tmp_path: Path, args: list[str]) -> None:
    """The command's module imports torch, Lightning, MLflow and Optuna only when its task runs."""
    proc = genre_lab(*args, cwd=tmp_path, flags=("-X", "importtime"))
    assert proc.returncode == 2 and "error: no setting" in proc.stderr, proc.stderr[-2000:]
    assert heavy_imports(proc) == []


def test_help_follows_the_choices_and_refuses_a_bad_one(tmp_path: Path) -> None:
    proc = genre_lab("train", "model=cnn", "data=gtzan", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "cnn*" in proc.stdout and "gtzan*" in proc.stdout and "data.root=???" in proc.stdout
    line = one_error(genre_lab("train", "model=crn", "--help", cwd=tmp_path))
    assert line.startswith("error: no option model=crn; did you mean model=crnn?")
