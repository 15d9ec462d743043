"""The adapter interface itself, on a numpy-only fake adapter."""

from __future__ import annotations

import os
import sys

import fake_adapters
import ml_dtypes
import numpy as np
import pytest
from fake_adapters import FakeAdapter

from conformance.ops import Op, Option, Reduction
from conformance_adapters.common import capture, exact_cast
from conformance_adapters.interface import Axes, Call, ErrorInfo, Implementation, UnsupportedCall

X = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]])


@pytest.fixture
def fake() -> FakeAdapter:
    return FakeAdapter()


def test_value_and_gradient(fake: FakeAdapter) -> None:
    impl = fake.implementation("fake.softmax")
    ct = np.array([[1.0, 0.0, -1.0], [0.5, 0.25, 0.0]])
    out = fake.run(impl, Call(X, cotangent=ct))
    e = np.exp(X - X.max(-1, keepdims=True))
    p = e / e.sum(-1, keepdims=True)
    np.testing.assert_allclose(out.value, p, rtol=1e-14)
    np.testing.assert_allclose(out.grad, p * (ct - (ct * p).sum(-1, keepdims=True)), rtol=1e-12)
    assert out.error is None and out.output_dtype == "float64" and out.grad_dtype == "float64"
    assert out.warnings == [] and out.stderr == "" and out.seconds > 0


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_narrow_dtypes_come_back_exactly(fake: FakeAdapter, dtype: str) -> None:
    dt = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    x = (np.arange(12.0).reshape(3, 4) / 7 + 1e-3).astype(dt)
    out = fake.run(fake.implementation("fake.identity"), Call(x))
    assert out.value is not None and out.value.dtype == dt and out.output_dtype == dtype
    assert out.value.tobytes() == x.tobytes()


def test_exception_is_captured_not_raised(fake: FakeAdapter) -> None:
    out = fake.run(fake.implementation("fake.raises"), Call(X))
    assert out.value is None and out.error is not None
    assert out.error.type == "builtins.ValueError"
    assert out.error.message == "boom: the framework refused"
    assert out.error.stage == "call"


def test_conversion_error_has_input_stage(fake: FakeAdapter) -> None:
    fake.fail_input = True
    out = fake.run(fake.implementation("fake.softmax"), Call(X))
    assert out.error is not None and out.error.stage == "input"
    assert out.error.type == "builtins.TypeError"


def test_warnings_and_stderr_are_captured(
    fake: FakeAdapter, capfd: pytest.CaptureFixture[str]
) -> None:
    out = fake.run(fake.implementation("fake.warns"), Call(X))
    assert out.warnings == ["RuntimeWarning: careful with that"]
    out = fake.run(fake.implementation("fake.stderr"), Call(X))
    assert "native: a log line on fd 2" in out.stderr
    assert "python: a line on sys.stderr" in out.stderr
    assert out.error is None
    os.write(2, b"after\n")  # fd 2 is restored
    assert "after" in capfd.readouterr().err


def test_log_lines_of_the_suites_own_setup_are_dropped_and_stamps_removed(
    fake: FakeAdapter,
) -> None:
    """A cache loader's complaint is not the call's message; absl's time stamp and thread id
    would make one message from two calls two messages."""
    fake.own_log_lines = ("a log line on fd 2",)
    out = fake.run(fake.implementation("fake.stderr"), Call(X))
    assert "a log line on fd 2" not in out.stderr
    assert "python: a line on sys.stderr" in out.stderr
    stamped = (
        "W0000 00:00:1795347978.533411    3517 op_kernel.cc:1858] OP_REQUIRES failed\n"
        "\t [[{{node X}}]]\n"
    )
    assert fake._call_log(stamped) == "W op_kernel.cc:1858] OP_REQUIRES failed\n\t [[{{node X}}]]\n"


def test_capture_nests_and_restores() -> None:
    with capture() as outer:
        os.write(2, b"outer\n")
        with capture() as inner:
            os.write(2, b"inner\n")
        os.write(2, b"outer again\n")
    assert inner.stderr == "inner\n"
    assert outer.stderr == "outer\nouter again\n"


def test_output_dtype_records_a_silent_change(fake: FakeAdapter) -> None:
    x = X.astype(np.float32)
    out = fake.run(fake.implementation("fake.upcast"), Call(x))
    assert out.output_dtype == "float64" and out.value is not None
    assert out.value.dtype == np.float64


def test_labels_and_array_options_are_cast(fake: FakeAdapter) -> None:
    impl = fake.implementation("fake.loss")
    x = X.astype(np.float16)
    call = Call(
        x,
        np.array([2, 0]),
        {"reduction": "sum", "ignore_index": -1, "class_weights": np.array([0.1, 1.0, 2.0])},
    )
    out = fake.run(impl, call)
    assert out.error is None and out.value is not None and out.value.shape == ()
    seen = fake_adapters.SEEN
    assert seen["labels"].dtype == np.int32 and seen["reduction"] is Reduction.SUM
    assert seen["ignore_index"] == -1 and seen["class_weights"].dtype == np.float16
    assert out.notes == ["class_weights rounded to float16"]


@pytest.mark.parametrize(
    ("impl", "call", "fragment"),
    [
        ("fake.any_axis", Call(X), "does not take float64"),
        ("fake.softmax", Call(X, mode="compiled-xla"), "no 'compiled-xla' mode"),
        ("fake.softmax", Call(X, options={"axis": 0}), "only the last axis"),
        ("fake.softmax", Call(X, options={"axis": (0, 1)}), "tuple axes"),
        ("fake.softmax", Call(X, options={"axis": 5}), "out of range"),
        ("fake.softmax", Call(X, options={"where": np.ones((2, 3), bool)}), "no option where"),
        ("fake.softmax", Call(X, options={"bogus": 1}), "unknown options"),
        ("fake.softmax", Call(X, device="cuda"), "no 'cuda' device"),
        ("fake.softmax", Call(X, labels=np.array([0, 1])), "takes no labels"),
        ("fake.identity", Call(X, cotangent=X), "has no gradient"),
        ("fake.loss", Call(X), "needs labels"),
        ("fake.loss", Call(X, np.array([0, 1]), {"reduction": "mean"}), "reduction mean"),
        ("fake.loss", Call(X, np.array([0, 1]), {"label_smoothing": 0.1}), "label_smoothing"),
        ("fake.binary", Call(X, np.zeros_like(X), {"axis": -1}), "element-wise"),
    ],
)
def test_undeclared_calls_are_refused(
    fake: FakeAdapter, impl: str, call: Call, fragment: str
) -> None:
    with pytest.raises(UnsupportedCall, match=fragment):
        fake.run(fake.implementation(impl), call)


def test_declared_calls_are_accepted(fake: FakeAdapter) -> None:
    ok = [
        ("fake.identity", Call(X, options={"axis": (0, 1)})),
        ("fake.identity", Call(X, options={"axis": None})),
        ("fake.softmax", Call(X, options={"axis": 1})),
        ("fake.softmax", Call(X, options={"label_smoothing": 0.0, "where": None})),
        ("fake.any_axis", Call(X.astype(np.float32), options={"axis": 0})),
        ("fake.binary", Call(X, np.zeros_like(X), {"axis": None})),
    ]
    for name, call in ok:
        impl = fake.implementation(name)
        assert fake.check(impl, call) is None, name
        assert fake.run(impl, call).error is None


def test_compiled_callables_are_cached_per_shape(fake: FakeAdapter) -> None:
    impl = fake.implementation("fake.softmax")
    for _ in range(3):
        fake.run(impl, Call(X, mode="compiled"))
    assert fake.builds == 1
    fake.run(impl, Call(X[:1], mode="compiled"))
    fake.run(impl, Call(X, mode="eager"))
    fake.run(impl, Call(X, mode="compiled", cotangent=X))
    assert fake.builds == 4
    fake.cache_size = 2
    fake.run(impl, Call(X[:, :2], mode="compiled"))
    assert len(fake._cache) == 2


def test_implementation_declarations_are_validated() -> None:
    with pytest.raises(ValueError, match="not in the catalog"):
        Implementation(
            "bad", Op.SOFTMAX, fake_adapters._softmax, options=frozenset({Option.IGNORE_INDEX})
        )
    impl = Implementation(
        "ok",
        Op.SPARSE_SOFTMAX_CROSS_ENTROPY,
        fake_adapters._loss,
        reductions=(Reduction.NONE, Reduction.SUM),
        axes=Axes.ANY,
    )
    assert Option.AXIS in impl.options and Option.REDUCTION in impl.options
    assert impl.label_dtype == "int64"
    assert impl.option_names == ("axis", "reduction")


def test_duplicate_implementation_names_are_refused(fake: FakeAdapter) -> None:
    impls = fake._implementations()
    fake._implementations = lambda: [*impls, impls[0]]  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="duplicate"):
        fake.implementations()


def test_exact_cast_reports_rounding() -> None:
    out, exact = exact_cast(np.array([0.5, 0.25]), "bfloat16")
    assert exact and out.dtype == np.dtype(ml_dtypes.bfloat16)
    _, exact = exact_cast(np.array([0.1]), "float16")
    assert not exact
    _, exact = exact_cast(np.array([2**40]), "int32")
    assert not exact
    _, exact = exact_cast(np.array([np.nan, np.inf]), "float16")
    assert exact


def test_unavailable_framework_has_a_reason() -> None:
    ok, reason = fake_adapters.NotInstalledAdapter().availability()
    assert not ok and "not installed" in reason


def test_a_missing_module_makes_real_adapters_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance_adapters.registry import get_adapter

    for module, names in {
        "torch": ["torch", "keras-torch"],
        "jax": ["jax", "keras-jax"],
        "tensorflow": ["tensorflow", "keras-tensorflow"],
        "scipy": ["scipy"],
        "keras": ["keras-jax"],
    }.items():
        monkeypatch.setitem(sys.modules, module, None)  # what `import module` then refuses
        for name in names:
            ok, reason = get_adapter(name).availability()
            assert not ok and f"{module} is not installed" in reason, (name, reason)
        monkeypatch.undo()


def test_error_message_skips_a_traceback_header() -> None:
    exc = RuntimeError(
        "Graph execution error:\n\nDetected at node X defined at:\n"
        '  File "a.py", line 1, in f\n\nReceived a label value of 5\n'
    )
    info = ErrorInfo.from_exception(exc)
    assert info.message == "Graph execution error: Received a label value of 5"
    assert info.type == "builtins.RuntimeError"


def test_trailing_axes_are_the_axes_from_one_to_the_last() -> None:
    """ONNX Softmax before opset 13: every axis from `axis` on, as a tuple (or None)."""
    from hypothesis import given
    from hypothesis import strategies as st

    from conformance.strategies import class_axes

    impl = Implementation(
        "t.softmax", Op.SOFTMAX, lambda x, labels, axis: x, axes=Axes.TRAILING, differentiable=False
    )
    x = np.zeros((2, 3, 4))
    for axis in (None, -1, 2, (2,), (1, 2), (-1, 1), (0, 1, 2)):
        assert impl.check(Call(x, options={"axis": axis})) is None, axis
    for axis in (0, 1, (0, 2), (0, 1), (1,)):
        assert impl.check(Call(x, options={"axis": axis})), axis

    @given(st.integers(1, 4).flatmap(lambda r: st.tuples(st.just(r), class_axes(r, Axes.TRAILING))))
    def drawn_are_declared(rank_axis: tuple[int, object]) -> None:
        rank, axis = rank_axis
        assert isinstance(axis, tuple)
        assert impl.check(Call(np.zeros((2,) * rank), options={"axis": axis})) is None

    drawn_are_declared()
