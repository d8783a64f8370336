"""Stage 6, views: takes law sets and tables and gives what a person looks at.

* :mod:`.plots`: the figures (one module per figure concept; PNG, SVG, PDF);
* :mod:`.report`: the self-contained HTML (or Markdown) report (inputs, one module per
  section, rendering).

Imports the planning stage and everything below it; nothing here imports torch.
Submodules load on demand (``from sparsitylaws.views import plots``): matplotlib is
imported only by what draws.
"""
