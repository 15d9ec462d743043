"""Results files: exact arrays, append-only JSONL, torn tails, merging, refusal of non-results."""

from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import pytest

from conformance.results import (
    SCHEMA,
    ResultsError,
    ResultsWriter,
    decode_array,
    encode_array,
    merge,
    read_records,
    write_atomically,
)


@pytest.mark.parametrize(
    "array",
    [
        np.array([[1.5, -np.inf], [np.nan, -0.0]], dtype=np.float32),
        np.array([1e-45, 3.4e38], dtype=np.float32),
        np.array([1, 2.5, 65504], dtype=np.float16),
        np.array([1.0078125, -0.0], dtype=ml_dtypes.bfloat16),
        np.array([5e-324, 0.1]),
        np.array([[3, -1]], dtype=np.int64),
        np.zeros((2, 0), dtype=np.float64),
    ],
)
def test_arrays_round_trip_bit_for_bit(array: np.ndarray) -> None:
    back = decode_array(json.loads(json.dumps(encode_array(array))))
    assert back.dtype == array.dtype and back.shape == array.shape
    assert back.tobytes() == array.tobytes()


def test_object_arrays_are_refused() -> None:
    with pytest.raises(ValueError):
        encode_array(np.array([object()]))
    with pytest.raises(ResultsError):
        decode_array({"dtype": "object", "shape": [1], "data": ""})


def test_writer_appends_and_a_torn_tail_is_set_aside(tmp_path) -> None:
    path = tmp_path / "run.jsonl"
    with ResultsWriter(path) as w:
        w.write({"adapter": "a", "verdict": "pass"})
        w.write({"adapter": "b", "verdict": "inaccurate"})
    with path.open("a") as f:
        f.write('{"schema": "' + SCHEMA + '", "adapter": "c", "ver')  # killed mid-write
    report = read_records(path)
    assert [r["adapter"] for r in report.records] == ["a", "b"]
    assert report.torn_lines == [3]
    with ResultsWriter(path) as w:  # resuming cuts the torn line
        w.write({"adapter": "c", "verdict": "pass"})
    report = read_records(path)
    assert [r["adapter"] for r in report.records] == ["a", "b", "c"] and not report.torn_lines


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json at all\n{}\n", "not JSON"),
        ("a complete last line is not a torn one\n", "not JSON"),
        ('{"a": 1}\n', "not a logit-conformance record"),
        ('{"schema": "other/9"}\n', "schema"),
    ],
)
def test_files_that_are_not_results_are_refused(tmp_path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ResultsError, match=message):
        read_records(path)


def test_missing_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ResultsError, match="cannot read"):
        read_records(tmp_path / "absent.jsonl")


def test_merge_keeps_each_cell_once(tmp_path) -> None:
    cell = {
        "adapter": "torch",
        "implementation": "f",
        "dtype": "float32",
        "device": "cpu",
        "mode": "eager",
    }
    write_atomically(tmp_path / "1.jsonl", [{**cell, "verdict": "pass"}])
    write_atomically(
        tmp_path / "2.jsonl",
        [{**cell, "verdict": "inaccurate"}, {**cell, "dtype": "float16", "verdict": "pass"}],
    )
    merged = list(merge([tmp_path / "1.jsonl", tmp_path / "2.jsonl"]))
    assert [(r["dtype"], r["verdict"]) for r in merged] == [
        ("float16", "pass"),
        ("float32", "inaccurate"),
    ]
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("suffix", [".xz", ".gz"])
def test_compressed_results_read_like_plain_ones(tmp_path, suffix: str) -> None:
    """Committed baselines are compressed (.jsonl.xz): readers take them by suffix."""
    import gzip
    import lzma

    plain = tmp_path / "r.jsonl"
    with ResultsWriter(plain) as writer:
        writer.write({"adapter": "a", "verdict": "pass", "max_ulp": 1.5})
    packed = tmp_path / f"r.jsonl{suffix}"
    opener = lzma.open if suffix == ".xz" else gzip.open
    with opener(packed, "wb") as f:
        f.write(plain.read_bytes())
    assert read_records(packed).records == read_records(plain).records


def test_a_worker_killed_by_the_suites_own_exception_is_our_call_failing() -> None:
    from conformance.results import crashed_in_the_suite, fails_on_our_call

    def crashed(detail: str) -> dict:
        return {
            "verdict": "crashed",
            "examples": 0,
            "findings": [{"kind": "crashed", "detail": detail}],
        }

    ours = crashed(
        'killed by signal 9;   File "/src/jax/_src/api.py", line 9, in f;'
        '   File "/work/main/conformance/errors.py", line 75, in _ordinal;'
        " TypeError: ufunc 'right_shift' not supported for the input types"
    )
    theirs = crashed('killed by signal 11;   File "/site-packages/jax/_src/api.py", line 9')
    assert crashed_in_the_suite(ours) and fails_on_our_call(ours)
    assert not crashed_in_the_suite(theirs) and not fails_on_our_call(theirs)
    assert not fails_on_our_call(crashed("killed by signal 11"))


def test_zero_dimensional_values_are_ordered_in_their_own_bits() -> None:
    from conformance.errors import strict_ulp

    for dtype in ("float16", "float32", "float64"):
        x = np.asarray(np.float64(1.0)).astype(dtype)
        nxt = np.nextafter(x, np.asarray(2, dtype))
        assert strict_ulp(nxt, np.float64(1.0), dtype) == 1.0
