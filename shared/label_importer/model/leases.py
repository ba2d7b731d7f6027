"""Why work on data units stops: their leases, taken so that two jobs never save over each other's labels.

How leases are kept is store/leases.py's business; the services and the bundle engine only need to know what
losing one, or waiting too long for one, means.
"""


class LeaseLost(Exception):
    """A lease ran out under slow work and another import took the data unit: this attempt must not save."""


class DataUnitsBusy(Exception):
    """Other consumers held some of the chunk's data units until the invocation ran short of time."""
