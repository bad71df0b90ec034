"""Errors meant for users: the CLI prints their message as one paragraph and exits non-zero."""


class FieldsError(RuntimeError):
    """A problem with the user's input or run, with the file and field at fault in the message."""
