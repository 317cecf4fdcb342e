"""`genre-lab COMMAND`: one command for every entry point, run as a user runs it (a process)."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from genre_lab.cli import COMMANDS, main


def genre_lab(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`python -m genre_lab ARGS` (what the `genre-lab` console script runs), from `cwd`."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for name in ("GENRE_LAB_HOME", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "genre_lab", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_help_lists_every_command(tmp_path: Path) -> None:
    proc = genre_lab("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in ("train", "sweep", "evaluate", "predict", "bench", *COMMANDS):
        assert re.search(rf"^    {name}(\s|$)", proc.stdout, re.M), (name, proc.stdout)
    # No arguments: the same list, as a usage error.
    bare = genre_lab(cwd=tmp_path)
    assert bare.returncode == 2 and "train" in bare.stdout


def test_unknown_command_names_the_choices(tmp_path: Path) -> None:
    proc = genre_lab("trian", cwd=tmp_path)
    assert proc.returncode == 2
    assert "unknown command 'trian'" in proc.stderr and "train, sweep, evaluate" in proc.stderr


def test_console_script_is_installed() -> None:
    """The `genre-lab` script of the installed distribution points at the same main."""
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "genre-lab"]
    assert script.value == "genre_lab.cli:main"


@pytest.mark.parametrize("command, shown", [
    # Hydra commands list their config groups and options (tests/cli/test_errors.py: more).
    ("train", ["== Configuration groups ==", "model: ", "cnn", "crnn", "features: ", "logmel", "data: ", "synthetic"]),
    ("evaluate", ["== Configuration groups ==", "data: ", "gtzan", "split=test"]),
    ("sweep", ["== Configuration groups ==", "sweep: ", "n_trials"]),
    # The others their argparse options.
    ("predict", ["--top-k", "--format", "PATH"]),
    ("bench", ["--quick", "SUITE"]),
])
def test_each_command_help_shows_its_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str, shown: list[str]
) -> None:
    # In this process (the heavy imports are loaded already); the dispatch is the console
    # script's own `main`, a process of it is tested above and below.
    monkeypatch.chdir(tmp_path)
    try:
        code = main([command, "--help"])
    except SystemExit as done:  # argparse exits after printing help
        code = done.code
    assert code == 0
    out = capsys.readouterr().out
    for text in shown:
        assert text in out, (command, text, out[:3000])
    # Asking for help writes nothing: no store, no outputs folder.
    assert list(tmp_path.iterdir()) == []


def test_hydra_overrides_pass_through(tmp_path: Path) -> None:
    """The remaining argv reaches Hydra as overrides; the composed config puts the stores in
    the working directory, not in the package."""
    proc = genre_lab("train", "--cfg", "job", "--resolve", "model=cnn", "seed=7", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import yaml

    cfg = yaml.safe_load(proc.stdout)
    assert cfg["model"]["name"] == "cnn" and cfg["seed"] == 7
    assert cfg["paths"]["root_dir"] == str(tmp_path.resolve())
    assert cfg["logger"]["mlflow"]["tracking_uri"] == f"sqlite:///{tmp_path.resolve()}/mlflow.db"


def test_bad_override_fails_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as done:
        main(["train", "model=nope", "--cfg", "job"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.startswith("error: no option model=nope; model is one of "), err
    assert "cnn, cnnsa, crnn" in err and "_base" not in err and err.count("\n") == 1, err


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - {"train", "evaluate", "sweep", "predict", "bench"}))
def test_every_other_command_answers_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each entry point that joined the command (one line in COMMANDS) answers --help."""
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0 and "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["predict", "embed", "explain", "ensemble", "pretrained"])
def test_usage_names_the_command_as_typed(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and out.startswith(f"usage: genre-lab {command} "), out[:200]
    assert "python -m" not in out


def test_old_module_path_still_runs_and_names_the_command(tmp_path: Path) -> None:
    """`python -m genre_lab.explain` (a shim) is the same command, usage and all."""
    proc = subprocess.run([sys.executable, "-m", "genre_lab.explain", "--help"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=180, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert proc.returncode == 0 and proc.stdout.startswith("usage: genre-lab explain "), proc.stderr[-2000:]


def _job_config(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> dict:
    import yaml

    main(["evaluate", *args, "--cfg", "job"])
    return yaml.safe_load(capsys.readouterr().out)


def test_evaluate_takes_the_model_positional_or_as_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """`genre-lab evaluate <model>` composes the config `run=<model>` does, whatever the model
    looks like to Hydra (digits only, a comma, a URI with `@`); Hydra's flags and overrides
    around it keep their meaning."""
    monkeypatch.chdir(tmp_path)
    for model in ("0123456789abcdef0123456789abcdef", "12345678901234567890123456789012", "1e5",
                  "models:/genre@champion", str(tmp_path / "a,b" / "best.ckpt"), "pretrained:musicnn-msd"):
        positional = _job_config([model, "split=val"], monkeypatch, capsys)
        assert positional["run"] == model and positional["split"] == "val"
        if "," not in model and not model.isdigit() and model != "1e5":  # as run=, Hydra would read a sweep or a number
            assert _job_config([f"run={model}", "split=val"], monkeypatch, capsys) == positional
    # The model after Hydra's flags and their values.
    assert _job_config(["-cn", "evaluate", "abc", "hop_seconds=1"], monkeypatch, capsys)["run"] == "abc"
    assert list(tmp_path.iterdir()) == []  # showing the config writes nothing
    with pytest.raises(SystemExit) as done:
        main(["evaluate", "abc", "run=def", "--cfg", "job"])
    assert done.value.code == 2 and "give the model once" in capsys.readouterr().err


def test_model_as_override_knows_hydras_flags() -> None:
    """The flags `model_as_override` skips with their value are the ones Hydra's own parser
    gives a value (a new Hydra flag fails here, not on a user's command line)."""
    from hydra.main import get_args_parser

    from genre_lab.cli import options

    takes_value = {flag for action in get_args_parser()._actions if action.option_strings and action.nargs != 0
                   and not isinstance(action, argparse._VersionAction) for flag in action.option_strings}
    assert takes_value == options._HYDRA_VALUE_FLAGS | options._HYDRA_OPTIONAL_VALUE_FLAGS
    rewrite = options.model_as_override
    assert rewrite(["-m", "abc", "split=val,test"]) == ["-m", "run='abc'", "split=val,test"]
    assert rewrite(["--info", "config", "abc"]) == ["--info", "config", "run='abc'"]
    assert rewrite(["~hop_seconds", "+x=1", "abc"]) == ["~hop_seconds", "+x=1", "run='abc'"]
    assert rewrite(["--cfg=job", "abc"]) == ["--cfg=job", "run='abc'"]
    assert rewrite(["run=abc", "--help"]) == ["run=abc", "--help"]
    assert rewrite(["it's.ckpt"]) == ['run="it\'s.ckpt"']
