"""Writes the packaged default law set (``sparsitylaws/lawset/default_lawset.json``).

Its content is the paper's figures (:mod:`sparsitylaws.lawset.packaged`) plus the recipe
note (:mod:`sparsitylaws.planning.recipe`): the recipe it describes and this law set's own
prediction for a model of another recipe.  That note is a prediction, so the file is built
here, in the planning stage.  ``python -m sparsitylaws.planning.default_lawset`` rewrites
it; a test checks that the packaged file equals what :func:`default_json_text` builds.
"""

from __future__ import annotations

import json
from pathlib import Path

from sparsitylaws.lawset.fileformat import LawSet
from sparsitylaws.lawset.packaged import build_default_dict, default_path
from sparsitylaws.planning.recipe import recipe_metadata

__all__ = ["build_default_lawset", "default_json_text", "write_default"]


def build_default_lawset() -> LawSet:
    """The default law set as a :class:`~sparsitylaws.lawset.LawSet`."""
    return LawSet.from_dict(build_default_dict(recipe_metadata), source="default law set (built)")


def default_json_text() -> str:
    """The exact text of the packaged default law set file."""
    return build_default_lawset().to_json()


def write_default(path: Path | None = None) -> Path:
    """Regenerate the packaged default law set file."""
    path = path or default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = default_json_text()
    json.loads(text)  # sanity
    path.write_text(text, encoding="utf-8")
    return path


if __name__ == "__main__":  # pragma: no cover
    print(write_default())
