"""Hyperparameter sweeps with Ray Tune: ``rayrec tune MODEL`` (:mod:`rayrec.tune.cli`).

* :mod:`~rayrec.tune.space`: ``KEY=DIST`` expressions, aliases, the per-model space files;
* :mod:`~rayrec.tune.trainable`: one trial = one training run (``TorchTrainer``), resources;
* :mod:`~rayrec.tune.sweep`: the ``Tuner`` (ASHA or FIFO, random or Optuna), resume;
* :mod:`~rayrec.tune.report`: the table of trials (CSV, Markdown) and ``best.yaml``;
* :mod:`~rayrec.tune.encodings`: reviews encoded once per sweep for frozen encoders.
"""
