"""``--sweep-backend=ray``: trials on long-lived Ray actors, one per GPU.

- :mod:`.backend`: checks the command line; :class:`~.backend.RayBackend` is the backend loop
  (:mod:`pytest_sweep.matrix.remote.loop`) with this package's pool as its dispatcher;
- :mod:`.pool`: starts the actors, hands them node ids, turns what Ray reports into events;
- :mod:`.worker`: the actor, a pytest worker session (shipped to the actors by value);
- :mod:`.plan`: how many actors, with which resources (no Ray import).

Importing this package imports no Ray: only :mod:`.pool` does, when the backend runs.
"""
