"""Comparing a canary's answer with stable's, on the answer shapes our handlers produce."""

from __future__ import annotations

import json
import math

import pytest

from gateway.canary.divergence import Mismatch, divergence


def native(rows: list[list[float]], key: str = "outputs") -> bytes:
    return json.dumps({key: rows}).encode()


def oip(rows: list[list[float]]) -> bytes:
    flat = [x for row in rows for x in row]
    shape = [len(rows), len(rows[0])]
    tensor = {"name": "scores", "datatype": "FP32", "shape": shape, "data": flat}
    return json.dumps({"model_name": "m", "outputs": [tensor]}).encode()


def classes(*labels: str) -> bytes:
    return json.dumps(
        [[{"label": lab, "probability": 0.9}, {"label": "z", "probability": 0.1}] for lab in labels]
    ).encode()


def test_cosine_is_the_lowest_over_rows() -> None:
    a = native([[1.0, 0.0], [0.0, 1.0]], "embeddings")
    b = native([[1.0, 0.0], [1.0, 1.0]], "embeddings")
    assert divergence(a, b, "cosine") == pytest.approx(1 / math.sqrt(2))
    assert divergence(a, a, "cosine") == pytest.approx(1.0)


def test_max_abs_over_native_and_oip_alike() -> None:
    a = [[1.0, 2.0, 3.0]]
    b = [[1.0, 2.5, 2.9]]
    assert divergence(native(a), native(b), "max_abs") == pytest.approx(0.5)
    assert divergence(oip(a), oip(b), "max_abs") == pytest.approx(0.5)


def test_top1_agreement_share() -> None:
    assert divergence(classes("cat", "dog"), classes("cat", "owl"), "top1") == 0.5
    assert divergence(classes("cat"), classes("cat"), "top1") == 1.0


def test_other_shapes_are_a_mismatch_not_a_pass() -> None:
    with pytest.raises(Mismatch):
        divergence(native([[1.0, 2.0]]), native([[1.0, 2.0, 3.0]]), "max_abs")
    with pytest.raises(Mismatch):
        divergence(native([[1.0]]), classes("cat"), "cosine")


def test_an_error_answer_is_not_compared() -> None:
    assert divergence(b"<html>oops", native([[1.0]]), "cosine") is None


def generated(*texts: str) -> bytes:
    answers = [{"generated_text": t, "details": {"finish_reason": "length"}} for t in texts]
    return json.dumps(answers[0] if len(answers) == 1 else answers).encode()


def text_oip(*texts: str) -> bytes:
    tensor = {"name": "text_output", "datatype": "BYTES", "shape": [len(texts)], "data": texts}
    return json.dumps({"model_name": "m", "outputs": [tensor]}).encode()


def test_tokens_is_the_shared_greedy_prefix_of_the_generated_words() -> None:
    assert divergence(generated("a b c d"), generated("a b c d"), "tokens") == 1.0
    # Diverged at the third word: what follows is conditioned on other text, so 2 of 4.
    assert divergence(generated("a b c d"), generated("a b x d"), "tokens") == 0.5
    # A shorter answer shares its words out of the longer one's count.
    assert divergence(generated("a b c d"), generated("a b"), "tokens") == 0.5
    assert divergence(generated(""), generated(""), "tokens") == 1.0
    # Several prompts: the worst; OIP's text_output alike.
    assert divergence(generated("a b", "c d"), generated("a b", "x d"), "tokens") == 0.0
    assert divergence(text_oip("a b", "c"), text_oip("a b", "c"), "tokens") == 1.0


def test_tokens_reads_a_streamed_body_from_its_last_line() -> None:
    streamed = b'{"token":"a "}\n{"token":"b"}\n' + generated("a b") + b"\n"
    assert divergence(generated("a b"), streamed, "tokens") == 1.0


def test_tokens_of_other_answers_is_a_mismatch() -> None:
    with pytest.raises(Mismatch):
        divergence(generated("a"), native([[1.0]]), "tokens")
    with pytest.raises(Mismatch):
        divergence(generated("a", "b"), generated("a"), "tokens")
