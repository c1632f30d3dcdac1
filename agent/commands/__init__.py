"""One module per `vla` subcommand: `add_arguments(parser)` and `run(args) -> int`."""
