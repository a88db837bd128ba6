"""Test-only: SIGKILL this process right after its Nth os.replace/os.rename (KILL_AT_REPLACE=N).

Put on PYTHONPATH by tests/test_kill.py; never shipped. The variable is removed at start so the
child processes doit starts (the fake idf.py, nginx helpers) run untouched.
"""

import os
import signal

_at = int(os.environ.pop("KILL_AT_REPLACE", "0") or 0)
if _at:
    _count = [0]
    _replace, _rename = os.replace, os.rename

    def _counted(real):  # type: ignore[no-untyped-def]
        def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            result = real(*args, **kwargs)
            _count[0] += 1
            if _count[0] == _at:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        return call

    os.replace = _counted(_replace)
    os.rename = _counted(_rename)
