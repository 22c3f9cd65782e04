"""Serving a finished run: ``rayrec predict`` scores a split's pairs and ``rayrec recommend``
ranks every user's unrated items, with the run's best weights, in Ray Data actor pools
(:mod:`~rayrec.serve.load` opens the run, :mod:`~rayrec.serve.predict`,
:mod:`~rayrec.serve.recommend`, :mod:`~rayrec.serve.cli`)."""
