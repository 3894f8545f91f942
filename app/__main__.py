"""``python -m app``: serve locally (Flask's server, for a quick try) or ``classify FILE`` offline."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .bundle import Bundle, BundleError
from .classifier import Classifier
from .config import Config, ConfigError, ServerConfig
from .offline import InputError, classify_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve HTTP on HOST:PORT with Flask's development server (default)")
    p = sub.add_parser("classify", help="classify a CSV (text[,entity] columns) or JSONL file; JSONL out")
    p.add_argument("file", type=Path)
    p.add_argument("--out", type=Path, help="output file (default: standard output)")
    p.add_argument("--bundle", type=Path, help="bundle directory (default: BUNDLE or the default bundle)")
    p.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        config = Config.from_env()
        server = ServerConfig.from_env()
        logging.basicConfig(level=config.log_level, format="%(levelname)s %(name)s: %(message)s")
        if args.command == "classify":
            bundle = Bundle.load(args.bundle or config.bundle)
            classifier = Classifier(bundle, threads=config.threads, bucket=config.length_bucket,
                                    max_batch=config.inference_batch)
            if args.out:
                tmp = args.out.with_name(f".{args.out.name}.partial")
                with tmp.open("w", encoding="utf-8") as out:
                    counts = classify_file(classifier, args.file, out, not args.no_progress)
                tmp.replace(args.out)
            else:
                counts = classify_file(classifier, args.file, sys.stdout, not args.no_progress)
            print(f"classified {counts['classified']} tweets, {counts['errors']} errors", file=sys.stderr)
            return 0
        from .server import create_app

        create_app(config).run(host=server.host, port=server.port, threaded=True)
        return 0
    except (ConfigError, BundleError, InputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"error: {exc.filename}: no such file", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
