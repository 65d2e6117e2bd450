"""The ``multihome`` console script (and ``python -m multihome``).

Two commands run without click: ``multihome --version`` (click alone costs about three times
the interpreter's own start-up, and ``--version`` is what scripts, udev rules and
configuration management call to probe for multihome), and the plain ``apply`` (``[--root
R] [--config F] apply`` with ``-q``, ``--detailed-exit-codes``, ``--no-sysctls``,
``--lock-timeout S``: what boot, udev and configuration management run), first as a no-op
(:mod:`multihome.noop`), else in full (:mod:`multihome.apply_cli`). Everything else goes to
the CLI. The plain ``apply`` runs without the cyclic garbage collector and ends with
:func:`exit_now`.
"""

import sys


def main() -> None:
    """Entry point (``[project.scripts]``, ``__main__``)."""
    args = sys.argv[1:]
    if args == ["--version"]:
        from multihome._version import __version__

        # The same text as click's version_option in multihome.cli.
        sys.stdout.write(f"multihome, version {__version__}\n")
        sys.exit(0)
    if "apply" in args:
        import gc

        # A plain apply is one short process whose objects live until it ends: the cyclic
        # collector's passes over every module, class and kernel object found nothing to
        # free (peak RSS the same at 256 ports) for 3-4% of its instructions.
        gc.disable()
        from multihome.noop import answer, parse

        request = parse(args)
        if request is None:
            gc.enable()  # the CLI's apply, as any other command
        else:
            try:
                decided = answer(request, args)
                if decided.code is not None:
                    sys.exit(decided.code)
                from multihome.apply_cli import main as apply_main

                apply_main(request, args, changed=decided.changed)
            except SystemExit as done:
                exit_now(done)
    from multihome.cli import main as cli_main

    cli_main()


def exit_now(done: SystemExit) -> None:
    """End the process as ``raise done`` would, without the interpreter's finalization.

    After the plain ``apply`` has said everything, tearing the interpreter down (collecting
    and freeing every module, class and object it made) is a tenth of a 16-port apply's
    instructions and changes nothing outside the process: its files are written and closed,
    its sockets close with it. So once stdout and stderr are flushed, ``os._exit`` ends it
    with the same exit code. Whenever finalization could still do something the process
    owes -- a non-integer exit status (printed), an ``atexit`` callback (logging, coverage,
    temporary files), a tracer or profiler (which write their data at exit), another
    thread (waited for), a flush that fails (reported) -- ``done`` is raised as before."""
    import atexit
    import os

    code = 0 if done.code is None else done.code
    threading = sys.modules.get("threading")
    if (
        not isinstance(code, int)
        or atexit._ncallbacks()  # (the count has no public name)
        or sys.gettrace() is not None
        or sys.getprofile() is not None
        or (threading is not None and threading.active_count() > 1)
    ):
        raise done
    try:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
    except BaseException:
        raise done from None
    os._exit(code)
