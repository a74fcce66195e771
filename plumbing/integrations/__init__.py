"""One module per outside system, each a thin client returning our own dataclasses."""


class IntegrationError(Exception):
    """An outside system failed. `permanent` means retrying the same call will not help."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent
