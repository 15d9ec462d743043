"""What an installed release accepts, read from the snippet (adapters/release.py)."""

from __future__ import annotations

import numpy as np
import pytest

from conformance_adapters.registry import adapter_names, get_adapter
from conformance_adapters.release import lacking, option_keywords, render_template

SNIPPET = "textwrap.dedent(x, axis={axis}, where={where?})"
"""textwrap.dedent(text) takes neither keyword: a stand-in for an old release."""


def test_optional_keywords_are_left_out_while_their_option_is_unset() -> None:
    template = "f(x, axis={axis?}, b={scale?}, where={where?}, reduction={reduction})"
    assert render_template(template, {"axis": -1, "scale": None}) == "f(x, reduction={reduction})"
    kept = render_template(template, {"axis": 1, "scale": np.ones(2), "where": np.ones(2, bool)})
    assert kept == "f(x, axis={axis}, b={scale}, where={where}, reduction={reduction})"


def test_the_snippet_says_which_keyword_of_which_callable_carries_which_option() -> None:
    found = option_keywords(
        "optax.softmax_cross_entropy(x, optax.smooth_labels(labels, {label_smoothing},"
        " axis={axis?}), where={where?}, axis={axis?})"
    )
    assert ("optax.smooth_labels", "axis", "axis", True) in found
    assert ("optax.softmax_cross_entropy", "where", "where", True) in found
    assert option_keywords("not python (") == ()


def test_a_call_the_release_cannot_express_is_named_not_run() -> None:
    why = lacking(SNIPPET, {"axis": -1, "where": np.ones(2, bool)})
    assert why is not None and "textwrap.dedent has no axis=" in why  # always passed
    assert "where" in (lacking("textwrap.dedent(x, where={where?})", {"where": 1}) or "")
    assert lacking("textwrap.dedent(x, where={where?})", {"where": None}) is None  # left out
    assert lacking("json.dumps(x, where={where})", {"where": 1}) is None  # takes **kwargs
    assert lacking("no_such_module.f(x, axis={axis})", {"axis": 1}) is None  # can't tell


@pytest.mark.parametrize("name", adapter_names())
def test_every_snippet_of_every_adapter_parses_and_marks_only_options_optional(name: str) -> None:
    from conformance.ops import OPTION_DEFAULTS

    for impl in get_adapter(name).implementations():
        if "={" not in impl.snippet:
            continue
        found = option_keywords(impl.snippet)
        assert found, impl.snippet  # it parsed
        optional = {option for _, _, option, left_out in found if left_out}
        assert optional <= set(OPTION_DEFAULTS), impl.name  # only an option can be unset
