"""Helpers for ``examples/train.py``: option parsing, data, specs, checkpoints, evaluation.

They live next to the trainer (not in the ``vaekit`` package) because they are example code:
copy ``train.py`` and this folder, then edit. ``train.py`` keeps the training loop itself in
plain sight; everything here is the plumbing around it.

- :mod:`trainlib.options`: the command line, ``--config`` files and ``--resume`` merging.
- :mod:`trainlib.specs`: the ``--loss``, ``--beta``, ``--prior`` and ``--adversarial``
  mini-languages and length units.
- :mod:`trainlib.data`: Fashion-MNIST and image folders, splits, samplers, loaders.
- :mod:`trainlib.runtime`: device, DDP, autocast, RNG states.
- :mod:`trainlib.checkpoint`: run folders, trainer state, ``history.csv``.
- :mod:`trainlib.evaluate`: validation, pictures, final metrics, ``summary.md``.
"""
