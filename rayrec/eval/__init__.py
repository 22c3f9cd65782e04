"""Evaluation: metrics (:mod:`rayrec.eval.metrics`)."""
