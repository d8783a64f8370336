"""Stage 4, the law set: takes measurement tables (or the paper's figures) and gives one
versioned JSON file of fitted laws, per run and across runs, with provenance and caveats.

* :mod:`.build`: :func:`fit_table`, a law set from tables (what ``sparsitylaws fit`` does);
* :mod:`.fileformat`: the file format, :class:`LawSet`, :func:`load_lawset` (docs/lawset.md);
* :mod:`.packaged`: the packaged default law set's content, from the paper's figures
  (the file itself is written by :mod:`sparsitylaws.planning.default_lawset`).

Imports :mod:`sparsitylaws.architecture`, :mod:`sparsitylaws.runfit` and
:mod:`sparsitylaws.tables` below it.
"""

from sparsitylaws.lawset.build import fit_table
from sparsitylaws.lawset.fileformat import LAWSET_FORMAT, LAWSET_VERSION, LawSet, load_lawset

__all__ = ["LAWSET_FORMAT", "LAWSET_VERSION", "LawSet", "fit_table", "load_lawset"]
