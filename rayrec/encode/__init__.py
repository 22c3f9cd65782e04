"""Encode once: the review-state store (:mod:`~rayrec.encode.store`), its Ray Data build
(:mod:`~rayrec.encode.build`, ``rayrec encode``) and which store a run reads
(:mod:`~rayrec.encode.plan`)."""
