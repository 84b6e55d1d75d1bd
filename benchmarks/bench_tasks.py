"""Python callables the engine benchmark runs in-process."""


def noop() -> None:
    """Does nothing: the benchmark measures the engine around it."""
