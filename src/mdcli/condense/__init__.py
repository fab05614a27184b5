"""Dataset condensation with NCFM (see docs/condense.md).

``config`` (the YAML schema), ``data`` (real data per class), ``domains`` (image / text
models, features, initial data), ``premodels`` (feature extractors), ``sampling``
(frequencies, adversarial sampling network), ``decode`` (multi-formation), ``condenser``
(the loop), ``evaluate`` (condensed vs random subset vs full), ``pipeline`` (what
``mdcli condense`` runs). The losses are :func:`mdcli.losses.ncfm.cf_loss` and
:func:`mdcli.losses.mmd.mmd_loss`.
"""
