"""One ONNX node as a model, run by ONNX Runtime on its CPU execution provider.

This module is the onnxruntime adapter's engine and, as source, the prelude of its
reproducers: a reproducer runs this very code, so what the suite called and what a
maintainer pastes cannot drift apart. It imports onnx and onnxruntime when imported.
"""

import contextvars

import numpy as np
import onnxruntime as ort
from onnx import helper

_OPTIMIZED = contextvars.ContextVar("onnx_optimized", default=False)
_SESSIONS: dict = {}


def optimized(fn):
    """`fn` with ONNX Runtime's graph optimisations on (ORT_ENABLE_ALL: constant folding,
    node fusions, layout changes); without it they are off (ORT_DISABLE_ALL)."""

    def call(*args):
        token = _OPTIMIZED.set(True)
        try:
            return fn(*args)
        finally:
            _OPTIMIZED.reset(token)

    return call


def onnx_run(op_type: str, opset: int, inputs: list, **attributes) -> np.ndarray:
    """Output 0 of one `op_type` node of the default domain at `opset`, on numpy `inputs`
    (None: an optional input left out); attributes set to None are left out. The model
    leaves shapes unknown, so one session serves every shape (sessions are cached)."""
    names = [f"input{i}" if a is not None else "" for i, a in enumerate(inputs)]
    while names and not names[-1]:
        names.pop()
    feeds = {name: a for name, a in zip(names, inputs, strict=False) if name}
    node = helper.make_node(
        op_type, names, ["output"], **{k: v for k, v in attributes.items() if v is not None}
    )
    value_info = helper.make_tensor_value_info
    graph = helper.make_graph(
        [node],
        op_type,
        [value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), None) for n, a in feeds.items()],
        [value_info("output", helper.np_dtype_to_tensor_dtype(inputs[0].dtype), None)],
    )
    model = helper.make_model(  # IR 8: opset 18's, read by every ONNX Runtime since 1.14
        graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8
    )
    key = (model.SerializeToString(), _OPTIMIZED.get())
    session = _SESSIONS.get(key)
    if session is None:
        options = ort.SessionOptions()
        options.log_severity_level = 4  # errors come back as the exception, not on stderr
        level = ort.GraphOptimizationLevel
        options.graph_optimization_level = level.ORT_ENABLE_ALL if key[1] else level.ORT_DISABLE_ALL
        session = ort.InferenceSession(key[0], options, providers=["CPUExecutionProvider"])
        _SESSIONS[key] = session
    return session.run(["output"], feeds)[0]
