"""What coalescing joins and how answers split (``gateway.joining``), on bodies alone: only
single items of a form that joins exactly; a split answer is, as JSON, each item's own."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway import joining
from gateway.backends import BackendResponse, Payload

JSON = "application/json"


def payload(obj: Any, content_type: str | None = JSON) -> Payload:
    return Payload(json.dumps(obj).encode(), content_type)


def one_row(name: str, data: list[Any], datatype: str = "FP32", **extra: Any) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": [1, len(data)], "data": data, **extra}


def unknown_task() -> str | None:
    return None


def items(*bodies: Any) -> list[joining.Single]:
    out = [joining.single(payload(b), unknown_task) for b in bodies]
    assert all(i is not None for i in out), bodies
    return [i for i in out if i is not None]


def answer(obj: Any) -> BackendResponse:
    return BackendResponse(200, json.dumps(obj).encode(), JSON)


def parsed(parts: list[BackendResponse] | None) -> list[Any]:
    assert parts is not None
    assert all(p.status == 200 and p.content_type == JSON for p in parts)
    return [json.loads(p.body) for p in parts]


@pytest.mark.parametrize(
    "unjoinable",
    [
        Payload(b"one text", "text/plain"),  # no task known: never bare
        Payload(b"\xff\xd8\xff\xe0 jpeg", "image/jpeg"),
        Payload(b'{"inputs": ["a"]}', None),  # no type: TorchServe hands the worker bytes
        payload({"inputs": ["a", "b"]}),  # several items already
        payload({"inputs": []}),
        payload({"inputs": "a"}),  # not a list: the worker refuses it, alone
        payload({"inputs": ["a"], "stream": True}),  # any other field
        payload(["a"]),
        Payload(b"{not json", JSON),
        Payload(b"", JSON, inputs={"data": b"a"}),  # TorchServe gRPC input map
        payload({"inputs": [{**one_row("x", [1.0, 2.0]), "shape": [2, 1]}]}),  # two rows
        payload({"inputs": [one_row("x", [1.0], parameters={"binary_data_size": 4})]}),
        payload({"inputs": [{**one_row("x", [1.0, 2.0]), "shape": [1, 3]}]}),  # data != shape
        payload({"inputs": [one_row("x", [1.0])], "id": 7}),  # the worker wants a string id
        payload({"inputs": [one_row("x", [1.0])], "extra": 1}),
        payload({"inputs": [one_row("x", [1.0])], "parameters": "fast"}),
    ],
)
def test_what_never_joins(unjoinable: Payload) -> None:
    assert joining.single(unjoinable, unknown_task) is None


def bare(body: bytes, content_type: str | None, task: str) -> joining.Single | None:
    return joining.single(Payload(body, content_type), lambda: task)


def test_a_bare_item_joins_as_the_json_the_worker_takes_for_its_task() -> None:
    text = bare("café".encode(), "text/plain; charset=utf-8", "text_embedding")
    assert text is not None and text.obj == {"inputs": ["café"]} and text.form == "bare"
    image = bare(b"\xff\xd8 jpeg", "image/jpeg", "image_classification")
    assert image is not None and image.obj == {"inputs": ["/9gganBlZw=="]}
    assert bare(b"\xff\xd8 jpeg", None, "image_classification") is not None
    assert image.key != text.key
    for body, ctype, task in [
        (b"text", "text/plain", "image_classification"),  # the task does not read it bare
        (b"\xff\xd8", "image/jpeg", "text_embedding"),
        (b"text", "text/plain", "tensor"),
        (b' {"inputs": ["a"]}', "text/plain", "text_embedding"),  # read as JSON by the worker
        (b" \n", "text/plain", "text_embedding"),  # empty: the worker's own 400
        ("\u3000".encode(), "text/plain", "text_embedding"),  # blank once decoded
        (b"\xef\xbb\xbftext", "text/plain", "text_embedding"),
        (b"\xff\xfe", "text/plain", "text_embedding"),  # not UTF-8
        (b"{}", "image/png", "image_classification"),
        (b"bytes", "application/x-custom", "image_classification"),
    ]:
        assert bare(body, ctype, task) is None, (body, ctype, task)


def test_a_bare_items_answer_is_its_entry_unwrapped() -> None:
    group = [bare(b"a", "text/plain", "text_classification") for _ in range(2)]
    assert all(group)
    joined = joining.join([g for g in group if g])
    assert (joined.body, joined.content_type) == (b'{"inputs":["a","a"]}', JSON)
    labels = [[{"label": "x", "probability": 0.5}], [{"label": "y", "probability": 0.4}]]
    assert parsed(joining.split([g for g in group if g], answer(labels))) == labels


def test_only_alike_oip_bodies_share_a_key() -> None:
    base = {"inputs": [one_row("x", [1.0, 2.0])]}
    key = items(base)[0].key
    assert items({**base, "id": "a"})[0].key == key  # each keeps its own id
    others = [
        {"inputs": [one_row("y", [1.0, 2.0])]},
        {"inputs": [one_row("x", [1, 2], "INT64")]},
        {"inputs": [one_row("x", [1.0, 2.0, 3.0])]},
        {**base, "parameters": {"top_k": 3}},
        {**base, "outputs": [{"name": "scores"}]},
    ]
    assert all(items(o)[0].key != key for o in others)
    native = items({"inputs": [[1.0, 2.0]]})[0]
    assert native.key != key
    charset = joining.single(
        payload({"inputs": ["a"]}, "application/json; charset=utf-8"), unknown_task
    )
    assert charset is not None and charset.key != native.key


def test_native_items_join_in_order_and_the_answer_splits_back() -> None:
    group = items({"inputs": ["a"]}, {"inputs": ["b"]}, {"inputs": ["c"]})
    joined = joining.join(group)
    assert json.loads(joined.body) == {"inputs": ["a", "b", "c"]}
    assert joined.content_type == JSON
    embeddings = answer({"embeddings": [[1.0], [2.0], [3.0]], "truncated": [1]})
    assert parsed(joining.split(group, embeddings)) == [
        {"embeddings": [[1.0]]},
        {"embeddings": [[2.0]], "truncated": [0]},  # as that text alone: its own index
        {"embeddings": [[3.0]]},
    ]
    labels = [[{"label": "cat", "probability": 0.9}], [{"label": "dog", "probability": 0.8}]]
    assert parsed(joining.split(group[:2], answer(labels))) == [[labels[0]], [labels[1]]]


@pytest.mark.parametrize(
    "odd",
    [
        {"embeddings": [[1.0], [2.0]]},  # one row short
        {"embeddings": [[1.0], [2.0], [3.0]], "note": "x"},  # a field that is not per item
        {"embeddings": [[1.0], [2.0], [3.0]], "truncated": [3]},
        {},
        "text",
        [1, 2],
    ],
)
def test_a_native_answer_of_another_shape_does_not_split(odd: Any) -> None:
    group = items({"inputs": ["a"]}, {"inputs": ["b"]}, {"inputs": ["c"]})
    assert joining.split(group, answer(odd)) is None


def test_oip_rows_join_along_dim_0_and_outputs_split_back() -> None:
    nested = {**one_row("x", []), "data": [[1.0, 2.0]], "shape": [1, 2]}
    group = items(
        {"id": "a", "inputs": [one_row("x", [0.0, 0.5])], "outputs": [{"name": "y"}]},
        {"inputs": [nested], "outputs": [{"name": "y"}]},
    )
    joined = json.loads(joining.join(group).body)
    assert joined == {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [0.0, 0.5, 1.0, 2.0]}
        ],
        "outputs": [{"name": "y"}],
    }
    worker = {
        "model_name": "m",
        "model_version": "1.0",
        "outputs": [
            {"name": "y", "datatype": "FP32", "shape": [2, 3], "data": [1, 2, 3, 4, 5, 6]},
            {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["p", "q"]},
        ],
        "parameters": {"truncated_inputs": [1]},
    }
    first, second = parsed(joining.split(group, answer(worker)))
    assert first == {
        "model_name": "m",
        "model_version": "1.0",
        "outputs": [
            {"name": "y", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]},
            {"name": "label", "datatype": "BYTES", "shape": [1], "data": ["p"]},
        ],
        "id": "a",
    }
    assert second["outputs"][0]["data"] == [4, 5, 6] and "id" not in second
    assert second["parameters"] == {"truncated_inputs": [0]}


@pytest.mark.parametrize(
    "odd",
    [
        {"outputs": [{"name": "y", "datatype": "FP32", "shape": [3, 1], "data": [1, 2, 3]}]},
        {"outputs": [{"name": "y", "datatype": "FP32", "shape": [2, 1], "data": [1]}]},
        {"outputs": [], "id": "joined"},
        {"outputs": [], "parameters": {"other": 1}},
        {"error": "bad"},
    ],
)
def test_an_oip_answer_of_another_shape_does_not_split(odd: Any) -> None:
    group = items({"inputs": [one_row("x", [1.0])]}, {"inputs": [one_row("x", [2.0])]})
    assert joining.split(group, answer(odd)) is None
