"""Where vcp keeps the portal's URL and the user's API token.

`$VCP_CONFIG`, else `$XDG_CONFIG_HOME/vcp/config.yaml`, else `~/.config/vcp/config.yaml`.
The token is a credential: the file is written 0600 inside a 0700 directory, through a
temporary file renamed into place, so it is never readable by others, even briefly.
"""

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from .errors import AUTH, VcpError


TOKEN = re.compile(r"[\x21-\x7e]+")  # what the portal issues; anything else cannot go in a header


@dataclass(frozen=True)
class Config:
    url: str
    token: str


def config_path(environ=os.environ) -> Path:
    if environ.get("VCP_CONFIG"):
        return Path(environ["VCP_CONFIG"])
    base = Path(environ["XDG_CONFIG_HOME"]) if environ.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "vcp" / "config.yaml"


def load(path: Path) -> Config:
    """The config at `path`; VcpError, with the path and what is wrong, for anything that
    is not one (a file edited by hand, a binary, a half-written copy)."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise VcpError("Not logged in: run `vcp login URL`.", AUTH) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        reason = str(exc).splitlines()[0] if not isinstance(exc, RecursionError) else "nested too deeply"
        raise VcpError(f"Cannot read {path}: {reason}; run `vcp login URL` again.") from None
    problem = _problem(data)
    if problem:
        raise VcpError(f"{path} {problem}; run `vcp login URL` again.")
    return Config(url=data["url"], token=data["token"])


def _problem(data) -> str:
    if not isinstance(data, dict) or not isinstance(data.get("url"), str) or not isinstance(data.get("token"), str):
        return "is not a vcp config (url and token)"
    return url_problem(data["url"]) or token_problem(data["token"])


def url_problem(url: str) -> str:
    """Why `url` cannot be the portal's, or nothing: `vcp login` and the config agree."""
    try:
        parts = urlsplit(url)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        usable = False
    return "" if usable else "names no http:// or https:// URL for the portal"


def token_problem(token: str) -> str:
    return "" if TOKEN.fullmatch(token) else "holds no usable token (printable ASCII without spaces)"


def save(path: Path, config: Config) -> None:
    write_private(path, yaml.safe_dump({"url": config.url, "token": config.token}))
    path.parent.chmod(0o700)  # the directory is vcp's own, even if something else made it


def remove(path: Path) -> bool:
    """Forget the login; False if there was none."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600, creating its directory with mode 0700."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
