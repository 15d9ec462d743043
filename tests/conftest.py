"""Hypothesis profiles. CI (`CI` set, as `.ci/run` does) runs derandomized: the same examples
every run, so a red CI means the code changed, not that a new draw got lucky. Elsewhere the
draws explore (and failures are saved in .hypothesis/ and replayed first)."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))
