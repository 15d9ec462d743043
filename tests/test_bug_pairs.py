"""The real-bug pairs table (conformance/real_bugs.toml) and the verdict on a pair."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from conformance import bug_pairs
from conformance_adapters.interface import api_selected
from conformance_adapters.registry import adapter_names, get_adapter

ROOT = Path(__file__).resolve().parent.parent
PAIRS = bug_pairs.load()


@functools.cache
def _lanes() -> dict[str, Any]:
    """noxfile.REGRESSION_LANES, the noxfile loaded once for the module."""
    pytest.importorskip("nox")
    spec = importlib.util.spec_from_file_location("_noxfile_for_pairs", ROOT / "noxfile.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.REGRESSION_LANES


def test_the_table_has_at_least_twelve_pairs_with_distinct_ids_and_links() -> None:
    assert len(PAIRS) >= 12
    assert len({p.id for p in PAIRS}) == len(PAIRS)
    for p in PAIRS:
        assert p.link.startswith("https://github.com/"), p.id
        assert p.bad != p.fixed, p.id


@pytest.mark.parametrize("pair", PAIRS, ids=[p.id for p in PAIRS])
def test_each_pair_names_a_lane_its_releases_install_and_an_api_the_adapters_have(
    pair: bug_pairs.BugPair,
) -> None:
    lanes = _lanes()
    assert pair.framework in lanes
    for release in (pair.bad, pair.fixed):
        lanes[pair.framework].row(pair.framework, release)  # raises for a release not covered
    adapters = list(pair.adapters) or [
        n for n in adapter_names() if n == pair.framework or n.startswith(f"{pair.framework}-")
    ]
    assert adapters and set(adapters) <= set(adapter_names())
    names = {i.name for a in adapters for i in get_adapter(a).implementations()}
    assert any(api_selected(n, [pair.api]) for n in names), (pair.api, sorted(names))
    assert pair.api.split("(")[0].rsplit(".", 1)[-1] in pair.reproducer  # the API's own call


def test_the_docs_table_is_rendered_from_the_pairs_file() -> None:
    docs = (ROOT / "docs" / "real-bugs.md").read_text()
    rendered = bug_pairs.table(PAIRS, bug_pairs.load_verdicts())
    assert rendered in docs, "run: python -m conformance.bug_pairs table > the docs table"


def _record(impl: str, kinds: list[str], verdict: str = "divergent", **extra: Any) -> dict:
    return {
        "adapter": "scipy",
        "implementation": impl,
        "dtype": "float64",
        "mode": "eager",
        "verdict": verdict,
        "examples": 3,
        "findings": [{"case": f"drawn-{i}", "kind": k, "known": None} for i, k in enumerate(kinds)],
        **extra,
    }


PAIR = bug_pairs.BugPair(
    id="t",
    framework="scipy",
    api="scipy.special.logsumexp",
    bad="1",
    fixed="2",
    link="https://github.com/x",
    what="w",
    reproducer="r",
)


def test_a_pair_is_caught_when_the_bad_release_has_a_finding_the_fixed_one_lacks() -> None:
    bad = [_record("scipy.special.logsumexp", ["raised", "over-budget"])]
    fixed = [_record("scipy.special.logsumexp", ["over-budget"], verdict="inaccurate")]
    verdict = bug_pairs.judge(PAIR, bad, fixed)
    assert verdict.status == "caught"
    assert verdict.signal == ["scipy/scipy.special.logsumexp/float64/eager: raised"]
    assert verdict.fixed_flagged == ["scipy/scipy.special.logsumexp/float64/eager: over-budget"]


def test_with_identical_inputs_a_finding_on_an_input_the_fixed_release_answers_is_caught() -> None:
    bad = [_record("scipy.special.logsumexp", ["raised", "raised"], inputs="d1")]
    fixed = [_record("scipy.special.logsumexp", ["raised"], inputs="d1")]
    verdict = bug_pairs.judge(PAIR, bad, fixed)
    assert verdict.signal == ["scipy/scipy.special.logsumexp/float64/eager: raised on drawn-1"]
    fixed[0]["inputs"] = "d2"  # other inputs (another declaration): by kind only
    assert bug_pairs.judge(PAIR, bad, fixed).status == "missed"


def test_the_same_findings_on_both_releases_or_another_api_is_a_miss() -> None:
    same = [_record("scipy.special.logsumexp", ["over-budget"])]
    assert bug_pairs.judge(PAIR, same, same).status == "missed"
    other = [_record("scipy.special.softmax", ["raised"])]
    assert bug_pairs.judge(PAIR, other + same, same).status == "missed"
    known = [_record("scipy.special.logsumexp", [])]
    known[0]["findings"] = [{"case": "c", "kind": "raised", "known": "documented"}]
    assert bug_pairs.judge(PAIR, known, same).status == "missed"


def test_a_cell_where_every_input_raised_is_our_call_failing() -> None:
    dead = [_record("scipy.special.logsumexp", ["raised"] * 3, verdict="error")]
    fine = [_record("scipy.special.logsumexp", [])]
    verdict = bug_pairs.judge(PAIR, dead, fine)
    assert verdict.status == "our call fails"
    assert verdict.own_failures == ["bad: scipy/scipy.special.logsumexp/float64/eager"]
    assert bug_pairs.judge(PAIR, [], fine).status == "not run"


def test_a_malformed_pairs_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pairs.toml"
    path.write_text('[[pair]]\nid = "x"\nframework = "scipy"\n')
    with pytest.raises(ValueError, match="missing"):
        bug_pairs.load(path)
    row = "".join(f'{k} = "{k}"\n' for k in ("framework", "api", "bad", "fixed", "link"))
    row += 'what = "w"\nreproducer = "r"\n'
    path.write_text(f'[[pair]]\nid = "x"\n{row}')
    assert [p.id for p in bug_pairs.load(path)] == ["x"]
    path.write_text(f'[[pair]]\nid = "x"\n{row}colour = "red"\n')
    with pytest.raises(ValueError, match="colour"):
        bug_pairs.load(path)
