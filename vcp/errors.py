"""The one error type of vcp: a message for people and the exit code for scripts."""

# Exit codes, documented in `vcp --help` and docs/cli.md.
OTHER, USAGE, AUTH, NOT_FOUND, QUOTA = 1, 2, 3, 4, 5


class VcpError(Exception):
    def __init__(self, message: str, exit_code: int = OTHER):
        super().__init__(message)
        self.exit_code = exit_code
