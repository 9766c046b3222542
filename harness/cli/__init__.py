"""The `harness` command line (:mod:`harness.cli.main`) and its `init` command."""
