"""The `meterkit` command. Each subcommand lives in its own module with `add_command(commands)`."""
import argparse
import importlib
import sys

# modules of this package that define a subcommand, in the order `meterkit --help` lists them
COMMANDS = ("decode", "simulate", "simulate_modbus", "read", "smgw", "record", "export", "bridge",
            "flash", "deploy", "release", "ota_server")


def build_parser():
    parser = argparse.ArgumentParser(prog="meterkit", description="Smart-meter decoding and dongle tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module("." + name, __package__).add_command(commands)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
