"""The named corpus: ids unique per op, unbatched twins of the one-row logit cases."""

from __future__ import annotations

import numpy as np
import pytest

from conformance import cases
from conformance.ops import CATALOG, LabelKind, Op


@pytest.mark.parametrize("op", list(Op))
def test_case_ids_are_unique(op: Op) -> None:
    ids = [c.id for c in cases.cases_for(op)]
    assert len(ids) == len(set(ids))


def test_every_short_one_row_logit_case_is_judged_unbatched_too() -> None:
    for op in (o for o in Op if CATALOG[o].labels is LabelKind.NONE):
        named = {c.id: c for c in cases.cases_for(op)}
        rows = [c for c in named.values() if c.x.ndim == 2 and c.x.shape == (1, c.x.shape[1])]
        short = [c for c in rows if c.x.shape[1] <= 64 and not c.id.endswith(cases.UNBATCHED)]
        assert {"fully-masked", "plus-inf", "spread-1000"} <= {c.id for c in short}
        for c in short:
            twin = named[c.id + cases.UNBATCHED]
            assert twin.x.shape == c.x.shape[1:] and twin.dtypes == c.dtypes
            np.testing.assert_array_equal(twin.x, c.x[0])
        assert "large-vocabulary" + cases.UNBATCHED not in named  # its cost, once


def test_losses_keep_their_batch() -> None:
    """A loss's batch convention differs by framework: no unbatched twins there."""
    for op in (o for o in Op if CATALOG[o].labels is not LabelKind.NONE):
        assert not any(c.id.endswith(cases.UNBATCHED) for c in cases.cases_for(op))
