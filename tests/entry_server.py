"""Start `python -m stylenet.<entry>` for the tests without paying the interpreter's start each time.

Importing torch, Hydra and TensorBoard takes about 2 s of the ~2.5 s an entry point needs before it
reads its first option, and the suite starts entry points some 150 times. This server imports them
once; each run is a fork of it: a separate process with its own working directory, environment,
stdout/stderr files and exit status, running the entry module as `__main__` exactly as `python -m`
would, then shutting down as the interpreter would (non-daemon threads joined, atexit handlers run,
streams flushed). The server itself never runs a torch operation, so no thread pool exists to be
forked. Protocol: one JSON request per line on stdin, one JSON answer per line on stdout.

Requests: {"module", "args", "cwd", "env", "stdout", "stderr", "timeout"} -> {"returncode"} (negative:
killed by that signal, as subprocess reports it) or {"timeout": true}.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import signal
import sys
import threading
import time
import traceback

PRELOADED = ("stylenet.train", "stylenet.infer", "stylenet.evaluate", "stylenet.optimize", "stylenet.precompute",
             "stylenet.export", "stylenet.get_weights")


def exit_code(error: SystemExit) -> int:
    """What the interpreter makes of sys.exit(value)."""
    if error.code is None:
        return 0
    if isinstance(error.code, int):
        return error.code
    print(error.code, file=sys.stderr)
    return 1


def run_child(request: dict) -> None:
    """In the forked process: become `python -m stylenet.<module> args...` and never return."""
    code = 1
    try:
        os.setpgid(0, 0)  # a timeout kills the run and anything it started
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        written = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        for fd, path, mode in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], written),
                               (2, request["stderr"], written)):
            opened = os.open(path, mode)
            os.dup2(opened, fd)
            os.close(opened)
        sys.path[0] = os.getcwd()  # where `python -m` looks first
        import sitecustomize  # the test hooks, now that this run's environment is in place

        sitecustomize.apply(os.environ)
        sys.argv = ["-m", *request["args"]]
        # `python -m` runs the module once, as __main__: forget the copy imported to warm up its dependencies
        sys.modules.pop(f"stylenet.{request['module']}", None)
        vars(sys.modules["stylenet"]).pop(request["module"], None)
        runpy.run_module(f"stylenet.{request['module']}", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as error:
        code = exit_code(error)
    except KeyboardInterrupt:
        traceback.print_exc()
        code = -signal.SIGINT  # the interpreter then ends itself with SIGINT
    except BaseException:  # what the interpreter prints for an uncaught exception
        traceback.print_exc()
        code = 1
    finally:
        threading._shutdown()  # type: ignore[attr-defined]  # the interpreter's own: stop executors, join threads
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        if code == -signal.SIGINT:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        os._exit(code)


def wait(pid: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return {"returncode": os.waitstatus_to_exitcode(status)}
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"timeout": True}
        time.sleep(0.005)


def serve() -> None:
    import importlib

    for module in PRELOADED:
        importlib.import_module(module)
    answers = sys.stdout
    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            run_child(request)
        answers.write(json.dumps(wait(pid, request["timeout"])) + "\n")
        answers.flush()


if __name__ == "__main__":
    serve()
