"""Fine-tuning from any trained model: `python -m genre_lab.train init_from=<source> ...`.

`<source>` is anything `genre_lab.models.loading.load_model` takes but an ensemble: an MLflow run
id, a checkpoint, a `models:/` or `runs:/` URI (read weights-only through `genre_lab.models.model_file`,
like every model file), or a pretrained network (`pretrained:musicnn-msd`,
`pretrained:musicnn-mtt`). Its front-end and backbone weights are copied into the new model,
which must have the same front end and backbone (the settings that shape the weights are
compared and a difference is an error naming the setting). The head is copied when the classes
are the same, in the same order; otherwise the new head starts fresh.
The lineage is recorded on the run: param `init_from`, tag `genre_lab.parent_run_id` when the
source is a run, and a line in the run's description.

LP-FT (linear probe, then fine-tune): `<source>` may be a `genre-lab probe` run of
`probe.layer=penultimate probe.pooling=mean`. Its model is the embedding network with the
probe's standardiser folded into its head (`genre_lab.models.probe_file.probe_network`), so
fine-tuning starts from the probed front end and backbone and from the probe's head, not from
a random one that would first pull the pretrained features towards its own noise. A probe run
of other classes than the new model's is refused (its head is the reason to start from it);
a probe run of other settings logged no model and is refused when loaded, naming them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from genre_lab.models.model_file import ModelSpec
from genre_lab.models.loading import load_model
from genre_lab.training.lightning_module import GenreClassifier

#: Front-end settings that do not change the weights (and may differ between parent and child).
_FREE_FRONTEND_KEYS = ("backend",)


@dataclass(frozen=True)
class Lineage:
    source: str
    parent_run_id: str | None
    head: str  # "copied", "new" or "the probe's (LP-FT)"

    def tags(self) -> dict[str, str]:
        tags = {"genre_lab.init_from": self.source,
                "mlflow.note.content": f"Fine-tuned from `{self.source}` (head {self.head})."}
        if self.parent_run_id:
            tags["genre_lab.parent_run_id"] = self.parent_run_id
        return tags


def _parent(source: str, tracking_uri: str | None) -> tuple[ModelSpec, dict[str, torch.Tensor], str | None]:
    """(spec, weights, run id) of the parent model, loaded and validated weights-only."""
    parent = load_model(source, tracking_uri, one_model_for="init_from")
    return parent.network.spec, parent.network.state_dict(), parent.source.run_id


def _is_probe(run_id: str | None, tracking_uri: str | None) -> bool:
    """Whether the parent's MLflow run is a `genre-lab probe` run (tag `run_type=probe`)."""
    if run_id is None:
        return False
    from genre_lab.tracking import mlflow_runs as tracking

    return tracking.open_client(tracking_uri).get_run(run_id).data.tags.get("run_type") == "probe"


def _differences(parent: dict[str, Any], child: dict[str, Any], prefix: str, free: tuple[str, ...] = ()) -> list[str]:
    keys = sorted((set(parent) | set(child)) - set(free) - {"_partial_"})
    return [f"{prefix}.{k}: {parent.get(k)!r} (parent) vs {child.get(k)!r}" for k in keys if parent.get(k) != child.get(k)]


def initialise_from(model: GenreClassifier, source: str, tracking_uri: str | None = None) -> Lineage:
    """Copy the parent's front-end and backbone (and head, when the classes match) weights into
    `model`. Raises ValueError naming what differs when the parent does not fit."""
    parent, weights, run_id = _parent(str(source), tracking_uri)
    child = model.spec
    problems = _differences(parent.features["frontend"], child.features["frontend"], "features.frontend",
                            _FREE_FRONTEND_KEYS)
    # `weights` of a pretrained backbone only says where its initial weights came from.
    problems += _differences(parent.model["backbone"], child.model["backbone"], "model.backbone", ("weights", "dropout"))
    if parent.sample_rate != child.sample_rate:
        problems.append(f"data.sample_rate: {parent.sample_rate} (parent) vs {child.sample_rate}")
    if problems:
        raise ValueError(f"init_from={source} does not fit this model (set these as the parent has them): "
                         + "; ".join(problems))
    state = {k: v for k, v in weights.items() if k.startswith(("frontend.", "backbone."))}
    head = "new"
    probe = _is_probe(run_id, tracking_uri)
    if list(parent.classes) == list(model.classes):
        state.update({k: v for k, v in weights.items() if k.startswith("head.")})
        head = "the probe's (LP-FT)" if probe else "copied"
    elif probe:
        raise ValueError(f"init_from={source} is a linear probe of classes {list(parent.classes)}, but this model's "
                         f"are {list(model.classes)}: LP-FT starts from the probe's head, so train on the probed dataset")
    own = model.net.state_dict()  # the network's keys, as `weights` has them (`genre_lab.models.model_file`)
    missing = [k for k in own if k.startswith(("frontend.", "backbone.")) and k not in state]
    shapes = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if missing or shapes:
        raise ValueError(f"init_from={source}: weights do not match the model "
                         f"(missing {missing[:5]}, other shapes {shapes[:5]})")
    model.net.load_state_dict(state, strict=False)
    return Lineage(str(source), run_id, head)
