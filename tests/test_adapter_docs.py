"""The third-party adapter example in docs/adapters.md works as written."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from conformance import reference
from conformance_adapters.interface import Call
from conformance_adapters.registry import get_adapter

DOC = Path(__file__).resolve().parent.parent / "docs" / "adapters.md"


def test_documented_example_adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    example = next(b for b in blocks if b.startswith("# my_adapter.py"))
    (tmp_path / "my_adapter.py").write_text(example, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_adapter", raising=False)
    adapter = get_adapter("my_adapter:MyAdapter")
    assert adapter.availability() == (True, "") and adapter.version()
    impl = adapter.implementation("mynumpy.softmax")
    x = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 5.0]], np.float32)
    out = adapter.run(impl, Call(x, options={"axis": 0}))
    assert out.error is None and out.output_dtype == "float32"
    want = reference.evaluate(impl.op, x, axis=0).value
    np.testing.assert_allclose(out.value, want, rtol=1e-6)
