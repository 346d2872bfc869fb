"""The distribution of ``onnx_int8``'s cosine to fp32 eager for MiniLM, the figure its bound is
set from (issue 12): many inputs, several runs, one and two threads, and the same export with
full 8-bit weights beside it, so the effect of ``reduce_range`` is measured in the same run.

    python -m bench.int8_parity [--random 200] [--runs 3]

Inputs: ``--random`` batches of random word-piece ids (sizes drawn from BATCHES x SEQUENCES,
each batch its own seed) and the real sentences of ``export.sentences``, tokenised as the
worker does. Writes ``bench/results/<date>-int8-parity.json`` and prints one row per variant,
thread count and input kind.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic

from bench.environment import cpu_environment
from export.exporters.onnx import OnnxExporter
from export.exporters.onnx_int8 import OnnxInt8Exporter, gelu_fed_matmuls
from export.models import minilm
from export.parity_inputs import sentence_cases

log = logging.getLogger("bench.int8_parity")
RESULTS = Path(__file__).parent / "results"
BATCHES = (1, 2, 3, 5, 8)
SEQUENCES = (4, 7, 16, 33, 64, 128, 256)


def random_cases(count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    cases = []
    for seed in range(count):
        gen = torch.Generator().manual_seed(seed)
        batch = BATCHES[seed % len(BATCHES)]
        seq = SEQUENCES[(seed // len(BATCHES)) % len(SEQUENCES)]
        ids = torch.randint(minilm.VOCAB_LOW, minilm.VOCAB_HIGH, (batch, seq), generator=gen)
        lengths = torch.randint(max(1, seq // 2), seq + 1, (batch,), generator=gen)
        mask = (torch.arange(seq).unsqueeze(0) < lengths.unsqueeze(1)).to(torch.int64)
        ids = torch.where(mask.bool(), ids, torch.zeros_like(ids))
        ids[:, 0] = minilm.CLS
        ids[torch.arange(batch), lengths - 1] = minilm.SEP
        cases.append((ids, mask))
    return cases


def full_range_variant(work: Path) -> Path:
    """The same quantisation as the exporter, but with 8-bit weights (before issue 12)."""
    fp32_dir = work / "fp32"
    fp32_dir.mkdir()
    spec = minilm.SPEC
    module = spec.build(None)
    fp32 = OnnxExporter().export(module, spec, spec.example_inputs(spec.sizes()), fp32_dir)[0]
    graph = onnx.load(str(fp32), load_external_data=False).graph
    path = work / "full_range.onnx"
    quantize_dynamic(
        fp32,
        path,
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        nodes_to_exclude=gelu_fed_matmuls(graph),
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return path


def cosines(model: Path, threads: int, cases: list[Any], refs: list[torch.Tensor]) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    out: list[float] = []
    for (ids, mask), ref in zip(cases, refs, strict=True):
        feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
        got = torch.from_numpy(session.run(None, feeds)[0]).double()
        out += torch.nn.functional.cosine_similarity(got, ref).tolist()
    return np.array(out)


def summary(values: np.ndarray) -> dict[str, float]:
    return {
        "rows": len(values),
        "min": round(float(values.min()), 5),
        "p0.1": round(float(np.percentile(values, 0.1)), 5),
        "p1": round(float(np.percentile(values, 1)), 5),
        "median": round(float(np.median(values)), 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=200, help="random batches (default 200)")
    parser.add_argument("--runs", type=int, default=3, help="sessions per variant and thread")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    spec = minilm.SPEC
    module = spec.build(None)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        kinds = {
            "random ids": random_cases(args.random),
            "sentences": [c.inputs for c in sentence_cases(spec, work)],
        }
        with torch.no_grad():
            refs = {k: [module(*c).double() for c in cases] for k, cases in kinds.items()}
        (work / "int8").mkdir()
        example = spec.example_inputs(spec.sizes())
        variants = {
            "onnx_int8 (7-bit weights)": OnnxInt8Exporter().export(
                module, spec, example, work / "int8"
            )[0],
            "8-bit weights (before)": full_range_variant(work),
        }
        rows = []
        for variant, model in variants.items():
            for threads in (1, 2):
                for kind, cases in kinds.items():
                    runs = [cosines(model, threads, cases, refs[kind]) for _ in range(args.runs)]
                    identical = all(np.array_equal(runs[0], r) for r in runs[1:])
                    row = {"variant": variant, "threads": threads, "inputs": kind}
                    rows.append({**row, **summary(runs[0]), "runs_identical": identical})
                    log.info("%s", rows[-1])
    result = {"environment": cpu_environment(), "runs": args.runs, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{dt.date.today().isoformat()}-int8-parity.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    log.info("written to %s", path)


if __name__ == "__main__":
    main()
