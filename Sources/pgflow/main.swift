// The `pgflow` command: see `pgflow --help`.
PGFlowCommand.main()
