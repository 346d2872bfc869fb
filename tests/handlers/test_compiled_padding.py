"""On a GPU the compile runtime pads the batch axis up to a few bucket sizes, so that CUDA
graphs are recorded for a handful of shapes instead of every batch size TorchServe forms."""

from __future__ import annotations

import torch

from handlers.runtimes.compile_settings import CompileSettings
from handlers.runtimes.compiled import BATCH_BUCKETS, CompiledRuntime, batch_bucket, pad_rows


def test_buckets_cover_every_size_with_few_shapes() -> None:
    sizes = {batch_bucket(n) for n in range(1, 1025)}
    assert sizes == set(BATCH_BUCKETS)
    assert all(batch_bucket(n) >= n for n in range(1, 2000))
    assert batch_bucket(1500) == 1500  # past the largest bucket: its own size, never cut


def test_padding_repeats_the_last_row_of_each_input() -> None:
    ids = torch.arange(6).reshape(3, 2)
    mask = torch.tensor([[1, 1], [1, 0], [1, 0]])
    padded = pad_rows([ids, mask], 4)
    assert [tuple(t.shape) for t in padded] == [(4, 2), (4, 2)]
    assert padded[0][3].tolist() == ids[2].tolist() and padded[1][3].tolist() == [1, 0]


def test_a_padded_run_answers_exactly_the_rows_asked_for() -> None:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Tanh()).eval()
    seen: list[tuple[int, ...]] = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(x.shape))
        return module(x)

    settings = CompileSettings(
        spec_file="s.py",
        spec_attr="SPEC",
        weights="w",
        cache="c",
        device_type="cuda",
        torch_version=torch.__version__,
        dynamic_axes=((0,),),
    )
    runtime = CompiledRuntime(fn, torch.device("cpu"), settings, cache_loaded=True)
    runtime.pad_batches = True  # as on a GPU
    x = torch.randn(5, 8)
    out = runtime.run([x])
    assert seen == [(8, 8)]  # run at the bucket
    assert out.shape == (5, 4)
    torch.testing.assert_close(out, module(x).detach())
