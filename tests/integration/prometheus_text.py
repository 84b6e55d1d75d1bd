"""Reading a ``/metrics`` answer the way a scraper does: with prometheus_client's own parser.

Label order and number formatting are the exposition library's business, so tests look a
sample up by its name and its label set, never by a line of text.
"""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families


class Samples:
    """Every sample of one exposition, by name and label set; ``le`` compared as a number."""

    def __init__(self, text: str) -> None:
        self.types: dict[str, str] = {}
        self._values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self._values[(sample.name, _key(sample.labels))] = sample.value

    def __call__(self, name: str, **labels: str | float) -> float:
        """The value of the one sample ``name{labels}``; KeyError if there is none."""
        return self._values[(name, _key(labels))]

    def has(self, name: str, **labels: str | float) -> bool:
        """Whether the sample ``name{labels}`` is there."""
        return (name, _key(labels)) in self._values

    def label_sets(self, name: str) -> list[dict[str, str]]:
        """The label sets of every sample called ``name``."""
        return [dict(labels) for n, labels in self._values if n == name]


def _key(labels: dict[str, str] | dict[str, str | float]) -> frozenset[tuple[str, str]]:
    # "1", "1.0" and 1.0 are the same bucket bound: compare bounds by their float value.
    return frozenset((k, repr(float(v)) if k == "le" else str(v)) for k, v in labels.items())


INF = math.inf
