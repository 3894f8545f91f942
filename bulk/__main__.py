"""``python -m bulk classify INPUT OUTPUT``: label an archive of tweets on Apache Spark with an edge bundle."""

from __future__ import annotations

import argparse
import re
import signal
import sys
from pathlib import Path

from app.arguments import whole_number
from bulk.formats import Format
from bulk.job import BulkError, Options, run, without_py4j_tracebacks

# A million made the driver's JVM run out of memory on a 44-row input (the tasks' plans alone); ten thousand is 10,000
# tweets a partition for 100 million.
MAX_PARTITIONS = 10_000
# The master URLs Spark 4 takes (its "Master URLs" documentation).
_N = r"[1-9]\d*"
_PORT = r"(6553[0-5]|655[0-2]\d|65[0-4]\d\d|6[0-4]\d{3}|[1-5]\d{4}|[1-9]\d{0,3})"  # 1 to 65535
_HOST_PORT = rf"(\[[0-9A-Fa-f:.]+\]|[^\s:/,\[\]]+):{_PORT}"  # a name, an IPv4 address or an IPv6 one in brackets
_MASTER = re.compile(rf"local(\[(\*|{_N})(,{_N})?\])?|local-cluster\[{_N},{_N},{_N}\]|yarn"
                     rf"|spark://{_HOST_PORT}(,{_HOST_PORT})*|k8s://\S+")


def _master(raw: str) -> str:
    if not _MASTER.fullmatch(raw):
        raise argparse.ArgumentTypeError(f"expected local, local[N], local[*], yarn, spark://HOST:PORT or "
                                         f"k8s://HOST:PORT, got {raw!r}")
    return raw


def _format(*allowed: Format):
    """An argparse type: a format's name, among ``allowed``."""
    def parse(raw: str) -> Format:
        if raw not in {f.value for f in allowed}:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(f.value for f in allowed)}, got {raw!r}")
        return Format(raw)
    return parse


def _setting(raw: str) -> tuple[str, str]:
    key, sep, value = raw.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {raw!r}")
    return key, value


def _as_ctrl_c(signum, frame) -> None:
    """SIGTERM as Ctrl-C: what handles SIGINT at that moment (PySpark's handler, once Spark runs, cancels the jobs
    first), else a KeyboardInterrupt."""
    handler = signal.getsignal(signal.SIGINT)
    if not callable(handler):
        raise KeyboardInterrupt
    handler(signum, frame)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bulk", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("classify", help="classify JSONL, CSV or Parquet (text[, entity], other columns kept)")
    p.add_argument("input", help="file or directory, local or any file system Spark reads (hdfs://, s3a://, ...)")
    p.add_argument("output", help="directory to write (Parquet or JSONL part files)")
    p.add_argument("--bundle", type=Path, help="bundle directory (default: BUNDLE or the default bundle)")
    p.add_argument("--master", type=_master, help="Spark master URL (default: spark-submit's, else local[*])")
    p.add_argument("--format", type=_format(*Format), metavar="{jsonl,csv,parquet}",
                   help="input format (default: from its name)")
    p.add_argument("--output-format", type=_format(Format.PARQUET, Format.JSONL), default=Format.PARQUET,
                   metavar="{parquet,jsonl}", help="output format (default: parquet)")
    p.add_argument("--keep-text", action="store_true", help="write the text column too")
    p.add_argument("--threads", type=whole_number(1, 256), default=1,
                   help="interpreter threads per task, and Spark cores per task (default 1)")
    p.add_argument("--partitions", type=whole_number(1, MAX_PARTITIONS),
                   help=f"repartition the input into N, at most {MAX_PARTITIONS:,} (default: at least one per core)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it is an earlier job's output")
    p.add_argument("--conf", type=_setting, action="append", default=[], metavar="KEY=VALUE",
                   help="a Spark setting (repeatable)")
    args = parser.parse_args(argv)
    options = Options(input=args.input, output=args.output, bundle=args.bundle, master=args.master,
                      input_format=args.format, output_format=args.output_format, keep_text=args.keep_text,
                      threads=args.threads, partitions=args.partitions, overwrite=args.overwrite,
                      conf=tuple(args.conf))
    without_py4j_tracebacks()
    signal.signal(signal.SIGTERM, _as_ctrl_c)
    try:
        counts = run(options)
    except BulkError as exc:
        clear = "\r\033[K" if sys.stderr.isatty() else ""  # over a progress bar Spark left on the line
        print(f"{clear}error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    errors = {reason: n for reason, n in counts.items() if reason is not None}
    detail = f" ({'; '.join(f'{reason}: {n}' for reason, n in sorted(errors.items()))})" if errors else ""
    print(f"classified {counts.get(None, 0)} tweets, {sum(errors.values())} errors{detail}; wrote {args.output}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
