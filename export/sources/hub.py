"""``hub:path/to/repo:entrypoint``: a torch.hub entrypoint of a LOCAL repository.

``torch.hub.load(repo, entrypoint, source="local", **--hub-kwargs)`` builds the module; its
inputs come from the module's ``example_input_array`` (first axis the batch), its output from
one forward pass; the task is ``tensor`` (``--task`` overrides). GitHub repositories
(``owner/repo``) are refused: nothing is downloaded. ``TORCH_HOME`` is ``.servegate/torch``
for the load, so a pretrained file is read from ``.servegate/torch/hub/checkpoints/<file>``;
one that is missing fails with the path it was expected at, never a network error, and the
file is loaded weights-only whatever the entrypoint asks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from export.errors import SpecCodeError, SpecError
from export.failure import user_trace
from export.sources.examples import dtype_of, resampled, shape_of, tensor_specs
from export.sources.options import SourceOptions, archive_name
from export.spec import ModelSpec, TensorSpec
from servegate.home import STATE, project_dir

GITHUB = re.compile(r"^[\w.-]+/[\w.-]+(:[\w./-]+)?$")


class MissingPretrained(SpecError):
    pass


def torch_home() -> Path:
    return project_dir() / STATE / "torch"


def repo_and_entry(target: str) -> tuple[Path, str]:
    repo, _, entry = target.rpartition(":")
    path = Path(repo)
    if not repo or not entry:
        raise SpecError(f"hub:{target}: expected hub:path/to/repo:entrypoint")
    if not path.is_dir():
        if GITHUB.match(repo):
            raise SpecError(
                f"hub:{target}: {repo} is not a local folder. GitHub repositories are not "
                "fetched (no network): clone it and pass its folder"
            )
        raise SpecError(f"hub:{target}: no such folder {path}")
    if not (path / "hubconf.py").is_file():
        raise SpecError(f"hub:{target}: {path} has no hubconf.py")
    return path, entry


def spec(target: str, options: SourceOptions) -> ModelSpec:
    repo, entry = repo_and_entry(target)
    module = load_entry(repo, entry, options.hub_kwargs).eval()
    example = getattr(module, "example_input_array", None)
    if isinstance(example, torch.Tensor):
        example = (example,)
    if not (isinstance(example, tuple) and all(isinstance(t, torch.Tensor) for t in example)):
        raise SpecError(
            f"hub:{target}: the module {entry}() returns has no example_input_array; set it "
            "(a tensor, first axis the batch) on the module the entrypoint returns"
        )
    with torch.no_grad():
        out = module(*example)
    if not isinstance(out, torch.Tensor):
        raise SpecError(f"hub:{target}: forward returns {type(out).__name__}, not one tensor")
    return ModelSpec(
        name=archive_name(options, entry),
        task=options.task or "tensor",
        build=lambda weights: module,
        example_inputs=resampled(example),
        inputs=tensor_specs(example),
        outputs=(TensorSpec(name="output", dtype=dtype_of(out), shape=shape_of(out)),),
    )


def load_entry(repo: Path, entry: str, kwargs: dict[str, Any]) -> torch.nn.Module:
    with _offline_torch_home():
        try:
            module = torch.hub.load(  # type: ignore[no-untyped-call]
                str(repo), entry, source="local", **kwargs
            )
        except SpecError:
            raise
        except Exception as exc:
            raise SpecCodeError(f"hub entrypoint {entry}() raised:\n{user_trace(exc)}") from None
    if not isinstance(module, torch.nn.Module):
        raise SpecError(f"hub entrypoint {entry}() returned {type(module).__name__}, not a module")
    return module


@contextmanager
def _offline_torch_home() -> Iterator[None]:
    """TORCH_HOME under .servegate/, downloads refused with the path expected, and pretrained
    files loaded weights-only."""
    home = torch_home()
    saved_env, saved_dir = os.environ.get("TORCH_HOME"), torch.hub.get_dir()
    saved_download, saved_load = torch.hub.download_url_to_file, torch.hub.load_state_dict_from_url
    os.environ["TORCH_HOME"] = str(home)
    torch.hub.set_dir(str(home / "hub"))

    def refuse(url: str, dst: str, *args: object, **kwargs: object) -> None:
        raise MissingPretrained(
            f"the entrypoint wants the pretrained file {Path(dst).name} (from {url}); nothing "
            f"is downloaded: put it at {dst}"
        )

    def weights_only(*args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True  # torch.hub's default is False: it would unpickle code
        return saved_load(*args, **kwargs)

    torch.hub.download_url_to_file = refuse
    torch.hub.load_state_dict_from_url = weights_only
    try:
        yield
    finally:
        torch.hub.download_url_to_file = saved_download
        torch.hub.load_state_dict_from_url = saved_load
        torch.hub.set_dir(saved_dir)
        if saved_env is None:
            os.environ.pop("TORCH_HOME", None)
        else:
            os.environ["TORCH_HOME"] = saved_env
