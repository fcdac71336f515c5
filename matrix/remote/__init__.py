"""The controller's side of a run whose trials run elsewhere (``--sweep-backend=ray``, and the next).

- :mod:`.protocol`: what a backend's pool of workers offers (:class:`~.protocol.Dispatcher`) and the
  events it emits about them;
- :mod:`.loop`: :class:`~.loop.BackendLoop`, the run loop that consumes those events, as
  pytest-xdist's ``DSession`` consumes its nodes' events.

Neither module imports a cluster library: a backend (:mod:`pytest_sweep.matrix.ray`) brings its own.
"""
