"""The `fields` subcommands, one module each (`add_parser`, `run`); `nfields.cli` assembles them."""
