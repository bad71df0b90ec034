"""User-facing data errors."""


class DatasetError(ValueError):
    """Bad or missing input data. The message names the file and the field at fault."""

    def __init__(self, path, problem: str, hint: str = ""):
        self.path = str(path)
        message = f"{self.path}: {problem}"
        if hint:
            message += f"\n  {hint}"
        super().__init__(message)
