"""The on-disk cache gives back exactly what was stored, and can be moved or switched off."""

from __future__ import annotations

import numpy as np
import pytest

from conformance import cache
from conformance.dtypes import as_dtype
from conformance.strategies import Example


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_draws_come_back_bit_for_bit(cache_root) -> None:
    bf16 = np.array([[1.0, -np.inf, np.nan]], dtype=as_dtype("bfloat16"))
    examples = (
        Example(bf16, np.array([2, -100]), {"axis": -1, "ignore_index": -100}, invalid=True),
        Example(np.array([[0.1, -0.0]], np.float64), None, {"axis": (0, 1)}),
        Example(np.array([0.5, 2.0], np.float16), np.array(1), {"axis": 0}),  # 0-d labels
    )
    key = cache.draws_key("op", "bfloat16", 7)
    assert cache.load_examples(key) is None
    cache.store_examples(key, examples)
    back = cache.load_examples(key)
    assert back is not None and len(back) == 3
    for got, want in zip(back, examples, strict=True):
        assert got.x.dtype == want.x.dtype and got.x.tobytes() == want.x.tobytes()
        assert got.x.shape == want.x.shape
        assert (got.labels is None) == (want.labels is None)
        if want.labels is not None:
            assert np.array_equal(got.labels, want.labels)
            assert got.labels.shape == want.labels.shape
        assert got.options == want.options and got.invalid == want.invalid
    assert list(cache_root.glob("draws/*.npz"))


def test_a_damaged_entry_is_a_miss(cache_root) -> None:
    key = cache.draws_key("damaged")
    (cache_root / "draws").mkdir(parents=True, exist_ok=True)
    (cache_root / "draws" / f"{key}.npz").write_bytes(b"not a zip file")
    assert cache.load_examples(key) is None


def test_the_cache_can_be_switched_off(monkeypatch) -> None:
    monkeypatch.setenv("CONFORMANCE_CACHE_DIR", "off")
    assert cache.cache_dir("draws") is None
    key = cache.draws_key("off")
    cache.store_examples(key, (Example(np.zeros((1, 2), np.float32)),))
    assert cache.load_examples(key) is None


def test_keys_depend_on_every_part() -> None:
    assert cache.draws_key("softmax", "float32", 0) != cache.draws_key("softmax", "float32", 1)
    assert cache.machine_tag() == cache.machine_tag()
