"""Text from a store or a dataset reaches renderers as plain text (serving's one row per record
is tests/serving/test_request_records.py).

Class names, tags and params are whatever someone with write access to a dataset or an MLflow
store made them: a label like `$\\badcmd{$` must not crash matplotlib (it failed a whole
training run), and a tag holding `|`, newlines or `<!-- report:end -->` must not add rows, text
or markers to a README through `report --readme`. Everything runs on real files and a real
MLflow store."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.image import imread
from matplotlib.text import Text
from mlflow import MlflowClient

from genre_lab.cli import report
from genre_lab.reporting import comparison, experiment_report, readme_block
from genre_lab.config import compose
from genre_lab.cli.explain import main as explain_main
from genre_lab.inference.tag_output import write_table
from genre_lab.inference.tagger import GenreScore, TagResult
from genre_lab.reporting.plots import class_attribution_figure, confusion_matrix_figure, explanation_figure
from genre_lab.training.fit import fit_and_test
from tests.conftest import write_tone

SECRET_ENV = "GENRE_LAB_RENDER_SECRET"
SECRET = "s3cr3t-render-7f1c9a"
#: Labels that break mathtext, TeX, Markdown tables, HTML, README markers, rich markup and
#: shells. Each is also a valid folder name, so a `data=folder` dataset can carry them.
HOSTILE = [
    "$\\badcmd{$",
    "$x^$",
    "a|b <!-- report:end --> <b onclick=x>",
    "[bold]x\\ & % # _ { } ~ ^ `tick`",  # rich markup: shown without its tag if not escaped
    "$(touch canary) `touch canary`",
]


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


def _no_secret_under(*roots: Path) -> None:
    for root in roots:
        for path in [root] if root.is_file() else root.rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), path


def _png_ok(path: Path | str) -> None:
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50


# ------------------------------------------------------------------------------- figures


def test_every_figure_draws_hostile_labels_as_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A user's matplotlibrc asking for TeX (not installed here) and mathtext: the figures
    # must not use either for labels.
    monkeypatch.setitem(matplotlib.rcParams, "text.usetex", True)
    monkeypatch.setitem(matplotlib.rcParams, "text.parse_math", True)
    n = len(HOSTILE)
    rng = np.random.default_rng(0)
    summaries = comparison.summarise(
        [comparison.Observation((label,), (f"seed={s}",), float(rng.uniform())) for label in HOSTILE for s in (1, 2)])
    figures = {
        "cm": confusion_matrix_figure(rng.integers(0, 5, (n, n)), HOSTILE, title=HOSTILE[0]),
        "explain": explanation_figure(rng.random((16, 40)), rng.random((16, 40)), rng.random((8, n)), HOSTILE, 4.0,
                                      f"{HOSTILE[1]}: {HOSTILE[0]} (0.50)"),
        "class": class_attribution_figure(rng.random((16, 20)), HOSTILE[0], 3),
        "per_seed": experiment_report.per_seed_figure([HOSTILE[2]], {HOSTILE[1]: summaries}),
    }
    for name, fig in figures.items():
        texts = [t for t in fig.findobj(Text) if t.get_text()]
        # Every label is there, verbatim, and marked plain: drawing it later cannot parse it.
        shown = {t.get_text() for t in texts}
        assert any(label in s for s in shown for label in HOSTILE), (name, shown)
        assert all(not t.get_parse_math() and not t.get_usetex() for t in texts), name
        fig.savefig(tmp_path / f"{name}.png", dpi=60)  # outside any context, under the hostile rcParams
        _png_ok(tmp_path / f"{name}.png")
    assert matplotlib.rcParams["text.usetex"] is True  # the user's settings are left as they were


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A real training run (tiny CNN, one epoch) on a `data=folder` dataset whose genre folders
    carry the hostile names: real WAV files, a real MLflow store."""
    tmp = tmp_path_factory.mktemp("hostile_train")
    root = tmp / "music"
    for g, name in enumerate(HOSTILE):
        (root / name).mkdir(parents=True)
        for n in range(5):
            write_tone(root / name / f"c{n}.wav", seconds=1.0, sr=8000, freq=200.0 + 150 * g + 10 * n)
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv(SECRET_ENV, SECRET)
        mp.chdir(tmp)  # a canary written by any shell the labels reached would land here
        cfg = compose([
            "data=folder", f"data.root={root}", f"data.cache_dir={tmp / 'cache'}", "data.sample_rate=8000",
            "data.chunk_seconds=0.5", "data.eval_hop_seconds=0.5", "data.val_fraction=0.2", "data.test_fraction=0.2",
            "model=cnn", "trainer.max_epochs=1", "callbacks.progress_bar=null", "callbacks.early_stopping=null",
            "throughput_seconds=0", f"paths.root_dir={tmp}",
        ], output_dir=tmp / "out")
        result = fit_and_test(cfg)
    return {"tmp": tmp, "uri": uri, "result": result, "root": root}


def test_training_with_hostile_class_names_logs_its_figure_and_model(hostile_run: dict) -> None:
    tmp, result = hostile_run["tmp"], hostile_run["result"]
    assert sorted(result.classes) == sorted(HOSTILE)
    client = MlflowClient(hostile_run["uri"])
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"  # was FAILED: mathtext raised on the confusion matrix
    figure = client.download_artifacts(result.run_id, "test/confusion_matrix.png", str(tmp / "dl"))
    _png_ok(figure)
    cm = json.loads(Path(client.download_artifacts(result.run_id, "test/confusion_matrix.json", str(tmp / "dl"))).read_text())
    assert cm["classes"] == result.classes  # the names are kept as typed
    (logged,) = client.search_logged_models([run.info.experiment_id], filter_string=f"source_run_id = '{result.run_id}'")
    assert "MLmodel" in {a.path for a in client.list_logged_model_artifacts(logged.model_id)}
    assert not list(tmp.glob("*canary*"))


def test_explain_and_the_tag_table_show_hostile_class_names(hostile_run: dict, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    result, root = hostile_run["result"], hostile_run["root"]
    song = next((root / HOSTILE[0]).iterdir())
    code = explain_main([result.best_checkpoint, str(song), "--output", str(tmp_path / "fig"), "--method", "occlusion",
                         "--target", HOSTILE[3]])
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines at spaces
    assert code == 0 and " ".join(HOSTILE[3].split()) in out  # printed as typed, not read as rich markup
    _png_ok(tmp_path / "fig" / f"{song.stem}.png")

    # The tagging table (`predict --format table`): labels, paths and errors are cells of text.
    from rich.console import Console

    console = Console(file=io.StringIO(), width=300, color_system=None)
    write_table([TagResult(path=str(song), duration=1.0, genres=[GenreScore(HOSTILE[3], 0.9)]),
                 TagResult(path="[/]x.wav", error="[/red] not audio")], console)
    table = console.file.getvalue()
    assert HOSTILE[3] in table and "[/]x.wav" in table and "[/red] not audio" in table


# ------------------------------------------------------------------------------- report


def _run(client: MlflowClient, exp: str, model: str, seed: int, acc: float, **params: str) -> str:
    rid = client.create_run(exp, tags={"model": model, "features": "logmel"}).info.run_id
    client.log_param(rid, "seed", str(seed))
    for key, value in params.items():
        client.log_param(rid, key, value)
    client.log_metric(rid, "test/track_acc", acc)
    client.set_terminated(rid, "FINISHED")
    return rid


INJECTIONS = [
    "cnn |  9.999 | injected |\n| evil | 3 | 1.000 |",
    "x\n<!-- report:end -->\n# Pwned\n<!-- report:begin -->",
    "<img src=x onerror=alert(1)> `code` **bold** [link](http://e) ~~s~~",
    "\\end{tabular}\\input{/etc/passwd} & % $ # _ { } ~ ^ \\\\\n\n[3pt]*",
    "${oc.env:" + SECRET_ENV + "}",
]

README_HEAD = "# Results\r\n\r\nintro | with a pipe\n\n"
README_TAIL = "\n\nafter the table\r\n<!-- not a marker -->\n"


def _unescaped(text: str, ch: str) -> int:
    return len(re.findall(r"(?<!\\)" + re.escape(ch), text.replace("\\\\", "")))


def test_report_escapes_hostile_tags_and_params(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("hostile", artifact_location=str(tmp_path / "artifacts"))
    for g, model in enumerate(INJECTIONS):
        for seed in (1, 2):
            _run(client, exp, model, seed, 0.5 + 0.05 * g + 0.01 * seed, **{"data.fold": f"{seed}|\n<!--x-->"})
    readme = tmp_path / "README.md"
    old_block = "<!-- report:begin -->\nold table\n<!-- report:end -->"
    readme.write_bytes((README_HEAD + old_block + README_TAIL).encode())
    out = tmp_path / "report"
    code = report.main(["hostile", "--tracking-uri", uri, "--out", str(out), "--group-by", "model",
                        "--pair-by", "seed,data.fold", "--readme", str(readme)])
    assert code == 0

    text = readme.read_bytes().decode()
    assert text.startswith(README_HEAD + readme_block.README_BEGIN) and text.endswith(readme_block.README_END + README_TAIL)
    assert text.count(readme_block.README_BEGIN) == 1 and text.count(readme_block.README_END) == 1
    block = text[len(README_HEAD) + len(readme_block.README_BEGIN): -len(readme_block.README_END + README_TAIL)]
    md = (out / "report.md").read_text()
    assert block.replace("\r\n", "\n") == "\n" + md
    assert "<" not in md.replace("| <0.001 |", "") and "\r" not in md  # no HTML, comment or marker of any kind
    lines = md.split("\n")
    first = lines[: lines.index("")]
    # header, rule, one row per group; each row has exactly its 3 cells (4 unescaped pipes)
    assert len(first) == 2 + len(INJECTIONS)
    assert all(_unescaped(line, "|") == 4 for line in first), first
    pairs = [line for line in lines if line.startswith("| ") and line not in first]
    assert len(pairs) == 2 + len(INJECTIONS) * (len(INJECTIONS) - 1) // 2
    assert all(_unescaped(line, "|") == 8 for line in pairs), pairs
    assert [line for line in text.splitlines() if line.startswith("#")] == ["# Results"]  # no heading injected
    assert "**bold**" not in md and "`code`" not in md and "[link](" not in md and r"\[link\](http://e)" in md

    tex = (out / "report.tex").read_text()
    rows = tex.strip().split("\n")
    assert rows[0] == r"\begin{tabular}{lrr}" and rows[-1] == r"\end{tabular}" and "" not in rows
    body = [r for r in rows if r.endswith(r" \\")]
    assert len(body) == 1 + len(INJECTIONS)  # header + one row per group, nothing injected
    for row in body:
        core = row[: -len(r" \\")]
        assert _unescaped(core, "&") == 2 and _unescaped(core, "%") == 0 and _unescaped(core, "#") == 0, row
        assert _unescaped(core, r"\\") == 0 and "\\end{tabular}" not in core and "\\input" not in core, row
        assert not core.startswith("[") and not core.startswith("*")
        # braces balance once escaped ones are removed
        bare = core.replace(r"\{", "").replace(r"\}", "")
        depth = 0
        for ch in bare:
            depth += {"{": 1, "}": -1}.get(ch, 0)
            assert depth >= 0, row
        assert depth == 0, row
    _png_ok(out / "per_seed.png")
    assert not list(tmp_path.glob("*canary*"))
    _no_secret_under(tmp_path)


MARKERS = {
    "no markers": "no markers here\n",
    "begin only": "<!-- report:begin -->\nx\n",
    "end first": "<!-- report:end -->\nx\n<!-- report:begin -->\n",
    "two pairs": "<!-- report:begin -->\na\n<!-- report:end -->\n<!-- report:begin -->\nb\n<!-- report:end -->\n",
    "two ends": "<!-- report:begin -->\na\n<!-- report:end -->\nb <!-- report:end -->\n",
}


@pytest.mark.parametrize("case", list(MARKERS) + ["not utf-8"])
def test_readme_needs_exactly_one_marker_pair(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("plain", artifact_location=str(tmp_path / "artifacts"))
    for seed in (1, 2):
        _run(client, exp, "cnn", seed, 0.7)
    readme = tmp_path / "README.md"
    content = b"<!-- report:begin -->\n\xff\xfe\n<!-- report:end -->\n" if case == "not utf-8" else MARKERS[case].encode()
    readme.write_bytes(content)
    capsys.readouterr()  # the store's own setup logs
    code = report.main(["plain", "--tracking-uri", uri, "--out", str(tmp_path / "r"), "--readme", str(readme)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and str(readme) in err, err
    assert ("not UTF-8" in err) if case == "not utf-8" else ("exactly one '<!-- report:begin -->'" in err)
    assert readme.read_bytes() == content and not (tmp_path / "r").exists()


def test_ordinary_readme_block_is_replaced_and_the_rest_kept(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("plain", artifact_location=str(tmp_path / "artifacts"))
    for model, acc in (("cnn", 0.7), ("crnn_v2", 0.8)):
        for seed in (1, 2):
            _run(client, exp, model, seed, acc + 0.01 * seed)
    readme = tmp_path / "README.md"
    readme.write_text("head\n<!-- report:begin -->\n<!-- report:end -->\ntail\n")
    assert report.main(["plain", "--tracking-uri", uri, "--out", str(tmp_path / "r"), "--readme", str(readme), "--no-log"]) == 0
    text = readme.read_text()
    assert text.startswith("head\n<!-- report:begin -->\n| model | features | n | test/track_acc |\n")
    assert text.endswith("<!-- report:end -->\ntail\n")
    assert "| crnn_v2 | logmel | 2 | 0.815 ± 0.007 |" in text and "Paired differences of `test/track_acc`" in text


def test_sweep_plots_draw_hostile_parameter_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial someone added to a shared Optuna study with mathtext for parameter names: the
    sweep's plots are still drawn and logged (they were skipped with a mathtext error)."""
    import optuna

    from genre_lab.sweep import mlflow_parent
    from genre_lab.sweep.mlflow_parent import SweepTracker

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="s")
    space = {HOSTILE[0]: optuna.distributions.FloatDistribution(0, 1), HOSTILE[1]: optuna.distributions.FloatDistribution(0, 1)}
    for i in range(6):
        trial = study.ask(space)
        study.tell(trial, trial.params[HOSTILE[0]] + 0.1 * i)
    # Importances become metrics named after the parameters, which MLflow refuses for these
    # names: out of this test's scope (the sweep's own validation of parameter names).
    monkeypatch.setattr(mlflow_parent, "param_importances", lambda study: (_ for _ in ()).throw(ValueError("skipped here")))
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("sweep", artifact_location=str(tmp_path / "artifacts"))
    tracker = SweepTracker.open(client, exp, "s", {})
    skipped = tracker.log_study(study)
    assert [s for s in skipped if s.startswith("plots/")] == [], skipped
    for name in mlflow_parent._PLOTS:
        _png_ok(client.download_artifacts(tracker.parent_run_id, name, str(tmp_path / "dl")))
