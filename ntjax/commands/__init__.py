"""One module per CLI command. Each exposes `register(subparsers)`, which adds its parser with
`set_defaults(run=...)`; `run(args) -> Result`. Heavy imports happen inside `run`, so `--help` is fast."""
