"""``python -m app``: ``classify FILE`` offline, or ``verify BUNDLE`` (load and warm it up: what gunicorn runs
before it serves a bundle). The service itself is gunicorn's (``make serve``)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from .bundle import Bundle
from .classifier import Classifier
from .config import Config
from .errors import AppError, os_error_line
from .offline import check_input, check_output, classify_file, classify_into


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{classify,verify}")
    p = sub.add_parser("classify", help="classify a CSV (text[,entity] columns) or JSONL file; JSONL out")
    p.add_argument("file", type=Path)
    p.add_argument("--out", type=Path, help="output file, written whole or not at all (default: standard output)")
    p.add_argument("--bundle", type=Path, help="bundle directory (default: BUNDLE or the default bundle)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on standard error")
    p = sub.add_parser("verify", help="load a bundle, check its files and run one inference; exit 0 if it serves")
    p.add_argument("bundle", type=Path)
    return parser


def classify(config: Config, file: Path, out: Path | None, bundle: Path | None, progress: bool) -> None:
    check_input(file)
    if out:
        check_output(out, file)
    classifier = Classifier(Bundle.load(bundle or config.bundle), threads=config.threads, bucket=config.length_bucket,
                            max_batch=config.inference_batch)
    if out:
        counts = classify_into(classifier, file, out, config.max_text_chars, progress)
    else:
        counts = classify_file(classifier, file, sys.stdout, config.max_text_chars, progress)
    print(f"classified {counts['classified']} tweets, {counts['errors']} errors", file=sys.stderr)


def verify(path: Path) -> None:
    bundle = Bundle.load(path)
    Classifier(bundle, threads=1)  # builds the interpreter and runs a warm-up inference
    print(f"bundle {path}: {bundle.name} {bundle.version} ({bundle.quantization}) loads and runs")


def _as_ctrl_c(signum, frame) -> None:
    """SIGTERM (``timeout``, systemd, a batch scheduler) as Ctrl-C: ``--out``'s partial file is removed, not left."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Parse, dispatch, and turn an AppError or an unreadable file into one line on stderr and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "verify":
            verify(args.bundle)
        else:
            signal.signal(signal.SIGTERM, _as_ctrl_c)
            config = Config.offline_from_env()
            logging.basicConfig(level=config.log_level, format="%(levelname)s %(name)s: %(message)s")
            classify(config, args.file, args.out, args.bundle, not args.no_progress)
        return 0
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)  # classify's --out is left as it was
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
