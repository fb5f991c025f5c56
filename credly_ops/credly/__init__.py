"""Everything that speaks Credly's API, and nothing else: the client (``client``: the writes
and their look-ups, built on ``reads`` and on ``transport``, the connection and the one retry
loop), its error tree (``errors``), the filter and sort syntax (``filters``) and a job's pace
under Credly's rate limit (``pacing``). The retry numbers and decisions it shares with the
Skilljar client are :mod:`credly_ops.retry`; the local Credly for the demo and the tests is
:mod:`credly_ops.emulators.credly`."""
