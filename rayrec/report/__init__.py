"""Reports of runs and sweeps: ``report.md`` with PNG plots, and TensorBoard event files.

* :mod:`rayrec.report.run_report`: the report of one training run, written beside its
  ``results.json`` at the end of :func:`rayrec.train.trainer.fit` (config, data manifest
  summary, test and best validation metrics, per-epoch history; ``loss.png``, and for rating
  models with exported weights ``ratings.png`` and the attention figures of SIFN and U-BERT);
* :mod:`rayrec.report.sweep_report`: the report of a sweep (``report.md`` and ``curves.png``,
  every trial's validation curve), written at the end of every sweep invocation;
* :mod:`rayrec.report.tensorboard`: rank 0's TensorBoard scalars during training;
* ``rayrec report DIR`` (:mod:`rayrec.report.cli`) rebuilds either report, local or s3://.

This package's ``__init__`` imports nothing: the training loop imports the TensorBoard writer
without paying for matplotlib.
"""
