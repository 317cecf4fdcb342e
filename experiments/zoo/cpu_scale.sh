#!/usr/bin/env bash
# The zoo at CPU scale: every architecture of experiment=zoo with its paper's input (front end,
# sample rate, window length) but narrower layers, less data and the `medium` synthetic level
# (at this budget every model stays near chance on `hard`), so that the 30 runs fit in about an
# hour on two CPU cores. The widths below are the only change to the architectures; what they
# give is a comparison of the architectures' shapes at a small size, not of the papers' models
# (those are `genre-lab train experiment=zoo`, for a GPU).
#
#   bash experiments/zoo/cpu_scale.sh            # trains, perturbs, writes README.md and ROBUSTNESS.md
#   SEEDS="0 1" MODELS="cnn fcn" bash experiments/zoo/cpu_scale.sh   # a subset
#   PHASE=train|robustness|report bash experiments/zoo/cpu_scale.sh  # one phase
#
# Runs go to the MLflow experiment zoo_cpu of the usual store (GENRE_LAB_HOME or the working
# directory); extra arguments are passed to every `genre-lab train`.
set -euo pipefail

MODELS=${MODELS:-"cnn crnn fcn shortchunk shortchunk_res samplecnn samplecnn_se harmoniccnn cnnsa ast"}
SEEDS=${SEEDS:-"0 1 2"}
GENRE_LAB=${GENRE_LAB:-genre-lab}  # e.g. ".venv/bin/python -m genre_lab"
PYTHON=${PYTHON:-python}            # the Python that has genre_lab (finds the seed-0 runs)

# Per model: the widths at CPU scale (the papers' widths are in conf/model/<name>.yaml).
declare -A WIDTH=(
  [cnn]=""
  [crnn]=""
  [fcn]="model.backbone.channels=[32,64,64,64,32]"
  [shortchunk]="model.backbone.width=16"
  [shortchunk_res]="model.backbone.width=16"
  [samplecnn]="model.backbone.widths=[16,16,16,32,32,32,32,32,32,64,64]"
  [samplecnn_se]="model.backbone.widths=[16,16,16,32,32,32,32,32,32,64,64]"
  [harmoniccnn]="model.backbone.width=16"
  [cnnsa]="model.backbone.width=16 model.backbone.dim=32 model.backbone.heads=4 model.backbone.ff_dim=128"
  [ast]="model.backbone.dim=64 model.backbone.layers=2 model.backbone.heads=4 model.backbone.ff_dim=128 model.backbone.stride=16"
)

# The same data for every run: the medium synthetic level, 6 s clips (data seed 0); FCN's 29.1 s
# window sees each clip zero-padded to its length (data.short_clips=pad).
DATA=(
  "data.source.difficulty=medium"
  "data.source.clip_seconds=6.0"
  "data.source.clips_per_class={train: 10, val: 3, test: 5}"
  "data.train_chunks_per_clip=3"
  "data.short_clips=pad"
  "trainer.max_epochs=6"
  "callbacks.progress_bar=null"
  "logger.mlflow.experiment_name=zoo_cpu"
)

# Seed by seed, every model: stopped early, every model has as many seeds as the others.
train() {
  for seed in $SEEDS; do
    for model in $MODELS; do
      # shellcheck disable=SC2086  # the command and the widths are split into words
      $GENRE_LAB train experiment=zoo "model=$model" "seed=$seed" "${DATA[@]}" ${WIDTH[$model]-} "$@"
    done
  done
}

# The run id of a model's seed-0 training run in zoo_cpu (the newest, if it was run twice).
seed0_run() {
  $PYTHON - "$1" <<'PY'
import sys
from mlflow import MlflowClient
from genre_lab.tracking.mlflow_runs import tracking_uri
client = MlflowClient(tracking_uri())
experiment = client.get_experiment_by_name("zoo_cpu")
if experiment is None:  # nothing trained into this store yet
    print("")
    sys.exit(0)
runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1,
                          filter_string=f"tags.run_type = 'training' and tags.model = '{sys.argv[1]}' "
                                        "and params.seed = '0' and attributes.status = 'FINISHED'")
print(runs[0].info.run_id if runs else "")
PY
}

# How each model's seed-0 run degrades under the four perturbations (an evaluation run each).
robustness() {
  for model in $MODELS; do
    run=$(seed0_run "$model")
    if [ -z "$run" ]; then echo "no finished seed-0 run of $model in zoo_cpu; skipped" >&2; continue; fi
    $GENRE_LAB evaluate "$run" perturb=all progress=false explain.enabled=false
  done
}

report() {
  # --missing: runs logged before data.dataset_task existed recorded none (they were multiclass).
  $GENRE_LAB report zoo_cpu --group-by model --missing data.dataset_task=multiclass \
    --metric test/track_acc --metric test/track_auroc --metric model/params \
    --metric speed/train_examples_per_s --metric speed/test_audio_s_per_s \
    --readme "$HERE/README.md"
  # The evaluations under perturbation, one per model (seed 0): accuracy at a few levels.
  $GENRE_LAB report zoo_cpu --include evaluations --filter "tags.run_type = 'evaluation'" --group-by model \
    --missing data.dataset_task=multiclass \
    --ignore run --ignore perturb --latest --out "${GENRE_LAB_HOME:-.}/outputs/reports/zoo_cpu_robustness" \
    --metric perturb/white_noise/none/track_acc --metric perturb/white_noise/20/track_acc \
    --metric perturb/white_noise/10/track_acc --metric perturb/white_noise/0/track_acc \
    --metric perturb/pitch_shift/2/track_acc --metric perturb/pitch_shift/6/track_acc \
    --metric perturb/time_stretch/1.2/track_acc --metric perturb/time_stretch/1.5/track_acc \
    --metric perturb/compression/20/track_acc --readme "$HERE/ROBUSTNESS.md"
}

HERE=$(cd "$(dirname "$0")" && pwd)
case "${PHASE:-all}" in
  train) train "$@" ;;
  robustness) robustness ;;
  report) report ;;
  all) train "$@"; robustness; report ;;
  *) echo "PHASE must be train, robustness, report or all" >&2; exit 2 ;;
esac
