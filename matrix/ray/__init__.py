"""``--sweep-backend=ray``: trials on long-lived Ray actors, one per GPU.

- :mod:`.backend`: checks the command line; :class:`~.backend.RayBackend` is the controller's
  run loop;
- :mod:`.pool`: starts the actors, hands them node ids, decides what a fault means;
- :mod:`.worker`: the actor, a pytest worker session (shipped to the actors by value);
- :mod:`.plan`: how many actors, with which resources (no Ray import).

Importing this package imports no Ray: only :mod:`.pool` does, when the backend runs.
"""
