"""vcp: the vcportal command line, a client of the portal's REST API and nothing else.

  config.py      where the portal URL and token are kept (YAML, 0600 in a 0700 directory)
  api.py         the HTTP client: one error type carrying the API's message and an exit code
  kubeconfig.py  merging a vcluster's context into a kubeconfig file without touching others
  credentials.py the gateway tokens `vcp token` gives kubectl, kept until they near expiry
  progress.py    the live display of provisioning steps for `create --wait`
  cli.py         the commands (Typer), their output formats and exit codes

Typer (on Click) gives typed options, `--help` on every command and shell completion,
and brings rich for the live progress display. HTTP goes through requests, already a
dependency of the portal: the CLI needs nothing httpx would add.
"""
