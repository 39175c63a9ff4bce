"""`xfer`: one CLI whose subcommands are the pipeline's stages.

Every command takes `--workdir` (default `XFER_HOME` or the current directory) and `--json` (one
machine-readable object on stdout). Heavy libraries are imported inside the handlers so that
`xfer --help` stays fast (torch, mlflow and evidently each cost seconds to import).
`commands` holds one small handler per command, `parser` the argument groups; this module runs
them and turns an error into one line.
"""

from __future__ import annotations

import contextlib
import json
import sys

from xferlib.cli.parser import build

# Root causes that libraries bury under a generic first line (SQLAlchemy's "autoflush" notice).
_ROOT_CAUSES = ("No space left on device", "database or disk is full")


def _one_line(exc: BaseException) -> str:
    """The message's first line, or the buried root cause (a full disk) with its fix."""
    chain, seen = [exc], 0
    while chain[-1].__cause__ or chain[-1].__context__:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)  # type: ignore[arg-type]
        seen += 1
        if seen > 10:
            break
    text = "\n".join(str(e) for e in chain)
    for cause in _ROOT_CAUSES:
        if cause in text and cause not in str(exc).strip().split("\n")[0]:
            return f"{cause} (in the work dir); free disk space or move --workdir to a larger disk"
    first = str(exc).strip().splitlines()
    return first[0] if first else repr(exc)


def main(argv: list[str] | None = None) -> int:
    args = build(__doc__.splitlines()[0] if __doc__ else None).parse_args(argv)
    try:
        # with --json, stdout carries exactly one JSON object: progress and alerts go to stderr
        with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
            result = args.fn(args).to_dict()
    except KeyboardInterrupt:
        print("xfer: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for the user; the traceback with XFER_DEBUG=1
        from xferlib import env

        if env.debug():
            raise
        print(
            f"xfer {args.command}: error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr
        )
        return 2
    if args.json:
        print(json.dumps(result, default=str))
    elif result:
        for key, value in result.items():
            print(
                f"{key}: {json.dumps(value, default=str) if isinstance(value, dict | list) else value}"
            )
    return 0
