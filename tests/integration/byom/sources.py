"""Each source's fixture, made in a folder; returns the ``servegate export`` arguments."""

from __future__ import annotations

from pathlib import Path

from tests.support import fastai_learners, hf_folders, hub_repo, lightning_models


def hf_embedder(folder: Path) -> list[str]:
    return [f"hf:{hf_folders.sentence_transformer(folder / 'model')}"]


def hf_classifier(folder: Path) -> list[str]:
    return [f"hf:{hf_folders.sequence_classifier(folder / 'model')}"]


def hf_vit(folder: Path) -> list[str]:
    return [f"hf:{hf_folders.image_classifier(folder / 'model')}"]


def lightning_regressor(folder: Path) -> list[str]:
    """Trained for one epoch with hidden=24 and a dataclass hyperparameter; exported to
    TorchScript, the format whose tracing trips over a LightningModule's ``trainer``."""
    trained = lightning_models.train(folder, "byom_lit_served")
    return [
        f"{trained.module_file}:Regressor",
        "--ckpt",
        str(trained.ckpt),
        "--allow-global",
        "byom_lit_served.Config",
    ]


def hub_tinynet(folder: Path) -> list[str]:
    """A local hubconf repository; its pretrained file in servegate's TORCH_HOME (``folder``
    is SERVEGATE_HOME for the export)."""
    repo = hub_repo.make_repo(folder / "repo")
    hub_repo.save_pretrained(repo, folder, width=12)
    return [f"hub:{repo}:tinynet", "--hub-kwargs", '{"pretrained": true, "width": 12}']


def fastai_learner(folder: Path) -> list[str]:
    """Trained for one epoch, Resize((24, 32), method="crop"), exported with learn.export()."""
    return [f"fastai:{fastai_learners.export_learner(folder)}", "--trust-pickle"]
