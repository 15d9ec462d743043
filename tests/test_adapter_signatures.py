"""Reading an installed release's parameter defaults: signatures, docstrings, classes."""

from __future__ import annotations

import os.path
from types import SimpleNamespace

from conformance_adapters.signatures import (
    ABSENT,
    REQUIRED,
    as_source,
    parameter_defaults,
    resolve,
)


def _loss(
    x: object,
    labels: object,
    *args: object,
    axis: int = -1,
    reduction: str = "mean",
    **kwargs: object,
) -> object:
    return x


class _Layer:
    def __init__(self, axis: int = -1, **kwargs: object) -> None:
        self.axis = axis

    def call(self, inputs: object, mask: object = None) -> object:
        return inputs


def test_a_signature_gives_each_named_parameter_and_its_default_as_source() -> None:
    got = parameter_defaults(_loss)
    assert got == {"x": "required", "labels": "required", "axis": "-1", "reduction": "'mean'"}


def test_a_class_gives_its_constructor_then_its_call() -> None:
    assert parameter_defaults(_Layer) == {"inputs": "required", "mask": "None", "axis": "-1"}


def test_a_builtin_without_a_signature_is_read_from_its_docstring() -> None:

    builtin = SimpleNamespace(__doc__="logsumexp(input, dim, keepdim=False, *, out=None)")
    from conformance_adapters.signatures import _from_docstring

    assert _from_docstring(builtin) == {
        "input": "required",
        "dim": "required",
        "keepdim": "False",
        "out": "None",
    }
    assert _from_docstring(SimpleNamespace(__doc__="Returns the softmax.")) is None


def test_documented_words_and_values_compare_as_the_installed_text() -> None:
    assert as_source(REQUIRED) == "required" and as_source(ABSENT) == "absent"
    assert as_source("mean") == "'mean'" and as_source(None) == "None"
    assert as_source(-100) == "-100" and as_source(0.0) == "0.0"


def test_resolve_imports_the_longest_module_prefix() -> None:
    assert resolve("os.path.join") is os.path.join
    assert resolve("os.path") is os.path
