"""Training: one Ray Train loop for every model of :mod:`rayrec.models`.

* :mod:`~rayrec.train.config`: typed run configuration, YAML presets, ``--set`` overrides;
* :mod:`~rayrec.train.reviews`: per-review metadata + token store, loaded once per worker;
* :mod:`~rayrec.train.collate`: prepared-dataset rows -> model batch fields;
* :mod:`~rayrec.train.datasets`: the Ray datasets of a task (train / val / test);
* :mod:`~rayrec.train.engine`: DeepSpeed or DDP engine, one optimizer per update phase;
* :mod:`~rayrec.train.checkpoint`: checkpoint directories and safe loading;
* :mod:`~rayrec.train.loop`: ``train_loop_per_worker``;
* :mod:`~rayrec.train.trainer`: the ``TorchTrainer`` around it and ``results.json``;
* :mod:`~rayrec.train.cli`, :mod:`~rayrec.train.demo`: the ``train`` and ``demo`` commands.
"""

from rayrec.logs import drop_deepspeed_cpu_notice

drop_deepspeed_cpu_notice()  # before any module of this package imports deepspeed
