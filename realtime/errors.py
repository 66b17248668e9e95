"""The one exception type for problems the user can fix (bad file, missing weights, no CUDA).

Its message is a single line that names the thing at fault and says what to do; `cli.py`
prints it without a traceback. Anything else escaping the package is a bug.
"""


class UserError(Exception):
    """A problem with the user's input or environment, reported as one line (exit code 2)."""
