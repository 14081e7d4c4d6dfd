"""The ``edgeloop`` command line; each subcommand is imported only when it runs."""
