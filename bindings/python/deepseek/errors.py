"""Exceptions: one class per ds_status, all derived from DeepseekError.

The classes are made from the library's own status table (ds_status_name for 1, 2, ... until
"DS_UNKNOWN"), so a status appended in C gets its class without a change here. Each class is
also reachable under its Pythonic name: DS_ERR_NO_MEMORY -> NoMemoryError, DS_ERR_TIMEOUT -> DsTimeoutError (no builtin is
shadowed).
"""

import builtins

from ._lib import lib


class DeepseekError(Exception):
    """A libdeepseek call failed. ``status`` is the ds_status number, ``status_name`` its C
    name ("DS_ERR_SHAPE"), and the message is the library's detail for the failed call."""

    status = -1
    status_name = "DS_UNKNOWN"

    def __init__(self, message="", status=None):
        if status is not None:
            self.status = status
        super().__init__(message)


def _class_name(c_name):
    words = c_name[len("DS_ERR_"):].lower().split("_")
    name = "".join(w.capitalize() for w in words) + "Error"
    # Never shadow a builtin (TimeoutError): those get a Ds prefix.
    return "Ds" + name if hasattr(builtins, name) else name


BY_STATUS = {}


def _make_classes():
    code = 1
    while True:
        name = lib.ds_status_name(code).decode()
        if name == "DS_UNKNOWN":
            break
        cls = type(_class_name(name), (DeepseekError,),
                   {"status": code, "status_name": name,
                    "__doc__": lib.ds_status_str(code).decode().capitalize() + " (" + name + ")."})
        BY_STATUS[code] = cls
        code += 1


_make_classes()
globals().update({cls.__name__: cls for cls in BY_STATUS.values()})
__all__ = ["DeepseekError", "check", "error_for"] + [c.__name__ for c in BY_STATUS.values()]


def error_for(status, message=""):
    """The exception instance for ``status`` (a DeepseekError subclass)."""
    cls = BY_STATUS.get(status, DeepseekError)
    text = lib.ds_status_str(status).decode()
    if message:
        text = text + ": " + message
    return cls(text, status)


def check(status, ctx_handle=None):
    """Raises the status's exception with the calling thread's last error detail of
    ``ctx_handle`` (a raw ds_context pointer, or None for context-less calls)."""
    if status == 0:
        return
    detail = lib.ds_context_last_error(ctx_handle) or b""
    raise error_for(status, detail.decode(errors="replace"))
