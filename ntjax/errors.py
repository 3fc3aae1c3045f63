"""The one error type the CLI turns into a clear one-line message and a non-zero exit."""


class NtjaxError(Exception):
    """Bad input or an impossible request: the message is shown to the user as is, on one line."""


class DiskFull(NtjaxError):
    """The disk filled up mid-run: the message names the folder; background writers may be stuck."""
