"""The one entry point, the same for ``python -m texmate_ds`` and
``python texmate_ds.pyz``:

    texmate_ds [--config PATH] [serve]          run TTP + HTTP (the default)
    texmate_ds [--config PATH] manage COMMAND   the manage utility
    texmate_ds client ...                        a TTP client
    texmate_ds simulate ...                      many simulated meters

Exit status 2 means the configuration (or an app) is wrong; the message
names the file, line and key.
"""

import logging
import os
import sys

from texmate_ds import __version__, client, config, manage, server, simulate

USAGE = __doc__.split("\n\n")[1]


class UsageError(Exception):
    pass


def _split_config(argv):
    """Pull ``--config PATH`` (or ``--config=PATH``) from before the command."""
    path = None
    while argv and argv[0].startswith("--config"):
        if argv[0] == "--config":
            if len(argv) < 2:
                raise UsageError("--config needs a PATH")
            path, argv = argv[1], argv[2:]
        elif argv[0].startswith("--config="):
            path, argv = argv[0][len("--config="):], argv[1:]
        else:
            break
    return path, argv


def main(argv=None):
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:
        # The reader went away (`manage export A1 | head`): not an error of
        # ours. Point stdout at devnull so the exit's flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _main(argv):
    if argv and argv[0] in ("-h", "--help", "help"):
        print("usage:\n" + USAGE)
        return 0
    if argv and argv[0] == "--version":
        print("texmate_ds %s" % __version__)
        return 0
    try:
        config_path, argv = _split_config(argv)
    except UsageError as exc:
        print("texmate_ds: %s" % exc, file=sys.stderr)
        return 2
    command = argv[0] if argv else "serve"
    rest = argv[1:]
    if command == "client":
        return client.main(rest)
    if command == "simulate":
        return simulate.main(rest)
    if command not in ("serve", "manage"):
        print("texmate_ds: unknown command %r\nusage:\n%s" % (command, USAGE), file=sys.stderr)
        return 2
    try:
        settings = config.load(cli_path=config_path)
    except config.ConfigError as exc:
        print("texmate_ds: configuration error: %s" % exc, file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.LOG_LEVEL.upper() if command == "serve" else "WARNING",
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if command == "manage":
        return manage.main(rest, settings)
    if rest:
        print("texmate_ds serve: unexpected arguments %s" % " ".join(rest), file=sys.stderr)
        return 2
    try:
        server.serve(settings)
    except server.StartupError as exc:
        print("texmate_ds: cannot start: %s" % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
