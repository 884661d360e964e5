"""Errors as a user reads them: the line that names the cause, without a JVM or Python stack."""

from __future__ import annotations

import re

_ERROR_CLASS = re.compile(r"\[[A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)?\]")


def first_line(exc: BaseException) -> str:
    """The line of an error's message that names its cause, without the JVM or Python stack.

    Spark wraps causes (a streaming query around its foreachBatch around a failed read): the
    last line carrying a Spark error class, such as `[FAILED_READ_FILE.FILE_NOT_EXIST]`, is the
    most specific one; otherwise the first non-empty line.
    """
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    classed = [line for line in lines if _ERROR_CLASS.search(line) and not line.startswith("at ")]
    line = classed[-1] if classed else lines[0]
    return line if len(line) <= 300 else line[:297] + "..."
