"""The one exception type for problems the user can fix (bad file, missing weights, no CUDA).

Its message is a single line that names the thing at fault and says what to do; `cli.py`
prints it without a traceback. Anything else escaping the package is a bug, except running out of memory
(`is_out_of_memory`), which a large enough input causes on any machine.
"""


class UserError(Exception):
    """A problem with the user's input or environment, reported as one line (exit code 2)."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type's name), for one-line reports."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an exception says memory ran out: Python's MemoryError, torch's CPU allocator and CUDA
    (torch.OutOfMemoryError) errors, and OpenCV's "Insufficient memory", recognised by their messages."""
    message = str(exc).lower()
    return isinstance(exc, MemoryError) or "out of memory" in message or (
        "allocate" in message and "memory" in message)

