"""`python -m syncer --config FILE`: the syncer without Django, as it runs in production.

`python manage.py syncer` resolves the config (also from a vcluster id) and then
replaces itself with this, so the long-running process does not carry Django.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .config import ConfigError, load
from .runner import Syncer, teardown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m syncer", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the syncer's YAML or JSON config file")
    parser.add_argument("--teardown", action="store_true",
                        help="delete every host object of this vcluster, then exit")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.teardown:
        print(f"deleted {teardown(config)} host objects of vcluster {config.vcluster}")
        return 0
    Syncer(config).run_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
