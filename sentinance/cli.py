"""The `sentinance` command: run the lakehouse flow, show status, open UIs."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone

from sentinance.config import get_settings


def _utc_hour(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date/time: {text!r}") from exc
    value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return value.replace(minute=0, second=0, microsecond=0)


def _run(args: argparse.Namespace) -> int:
    from sentinance.pipelines.lakehouse import lakehouse

    result = lakehouse(end=args.end, days=args.days, full_refresh=args.full_refresh)
    print(result["summary"])
    return 0


def _status(args: argparse.Namespace) -> int:
    from sentinance.status import collect_status, render_summary

    status = collect_status(get_settings())
    print(json.dumps(status, indent=2, default=str) if args.json else render_summary(status))
    return 0


def _ui_dbt_docs(args: argparse.Namespace) -> int:
    from sentinance.pipelines import marts

    settings = get_settings()
    index = marts.generate_docs(settings)
    print(f"dbt docs generated at {index}; serving on http://127.0.0.1:{args.port}")
    marts.serve_docs(settings, port=args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sentinance", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the whole lakehouse flow once (incremental)")
    run.add_argument("--end", type=_utc_hour, default=None,
                     help="exclusive end of the window, ISO UTC (default: the current hour)")
    run.add_argument("--days", type=int, default=90, help="history to keep in the window (default 90)")
    run.add_argument("--full-refresh", action="store_true", help="recompute silver and marts from scratch")
    run.set_defaults(func=_run)

    status = sub.add_parser("status", help="tables, versions, model aliases and UI commands")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_status)

    ui = sub.add_parser("ui", help="open a UI on this state")
    ui_sub = ui.add_subparsers(dest="ui", required=True)
    docs = ui_sub.add_parser("dbt-docs", help="generate and serve the dbt docs site on loopback")
    docs.add_argument("--port", type=int, default=8080)
    docs.set_defaults(func=_ui_dbt_docs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "days", 1) < 1:
        print("sentinance: error: --days must be at least 1", file=sys.stderr)
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
