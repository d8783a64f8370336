"""The lab: train small models, save checkpoint series, measure, fit and report them.

``sparsitylaws lab PLAN`` runs the stages of :mod:`sparsitylaws.lab.pipeline`:

corpus (:mod:`.corpus`) -> per model: train (:mod:`.train`, Hugging Face model classes on an
``accelerate`` loop) then measure (the existing :class:`sparsitylaws.measure.runner.Runner`)
-> fit (:func:`sparsitylaws.lawset.build.fit_table`) -> report (:func:`sparsitylaws.views.report.make_report`).

Plans are TOML (:mod:`.plan`); ``ci``, ``cpu`` and ``gpu`` are shipped presets
(:mod:`.presets`).  Only :mod:`.plan` and :mod:`.presets` are importable without torch.
"""
