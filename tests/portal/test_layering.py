"""Apps depend one way: accounts ← vclusters ← provisioning ← the apps on top (gitops, gateway).

Two checks, since either alone can be fooled: every accounts and vclusters module is
imported in a fresh process whose INSTALLED_APPS stop at that layer, and no higher
app's module may be loaded afterwards; and every import statement in their source,
including one inside a function that the first check would never run, is read."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The apps from the bottom up, then the peers on top: each may use every layer, and
# neither imports the other.
LAYERS = ["accounts", "vclusters", "provisioning"]
TOP = ["gateway", "gitops"]
# Only provisioning drives the standalone processes (syncer, localkube); the project's
# URL map imports every app.
STANDALONE = {"syncer", "localkube"}


def _forbidden_for(app: str) -> set[str]:
    if app in TOP:
        return set(TOP) - {app} | {"portal.urls"}
    above = set(LAYERS[LAYERS.index(app) + 1:]) | set(TOP)
    below_provisioning = LAYERS.index(app) < LAYERS.index("provisioning")
    return above | (STANDALONE if below_provisioning else set()) | {"portal.urls"}


# What each app must not import.
FORBIDDEN = {app: _forbidden_for(app) for app in LAYERS + TOP}

IMPORT_EVERY_MODULE = """
import importlib, pkgutil, sys
import portal.settings
portal.settings.INSTALLED_APPS = [a for a in portal.settings.INSTALLED_APPS if a not in {above!r}]
import django
django.setup()
import {app}
for module in pkgutil.walk_packages({app}.__path__, "{app}."):
    importlib.import_module(module.name)
loaded = sorted(name for name in sys.modules if any(name == f or name.startswith(f + ".") for f in {forbidden!r}))
print("\\n".join(loaded))
"""


def _imports(path: Path):
    """(line, module) for every absolute import in the file, at any depth."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.lineno, node.module
            # `from portal import urls` names the module in the alias.
            yield from ((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)


def _is_forbidden(module: str, forbidden: set[str]) -> bool:
    return any(module == f or module.startswith(f + ".") for f in forbidden)


@pytest.mark.parametrize("app", sorted(FORBIDDEN))
def test_importing_an_app_loads_nothing_above_it(app):
    above = sorted(a for a in FORBIDDEN[app] if "." not in a)
    code = IMPORT_EVERY_MODULE.format(app=app, above=above, forbidden=sorted(FORBIDDEN[app]))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [], f"importing {app} loaded: {result.stdout}"


@pytest.mark.parametrize("app", sorted(FORBIDDEN))
def test_no_source_line_imports_upwards(app):
    offending = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in sorted((ROOT / app).rglob("*.py"))
        for line, module in _imports(path)
        if _is_forbidden(module, FORBIDDEN[app])
    ]
    assert offending == []


def test_the_static_check_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "sneaky.py"
    source.write_text("def f():\n    from provisioning import tasks\n    import syncer.rbac\n")
    found = [module for _, module in _imports(source) if _is_forbidden(module, FORBIDDEN["vclusters"])]
    assert found == ["provisioning", "provisioning.tasks", "syncer.rbac"]


# Only the local runtime drives the embedded host emulator; everything else builds a
# control plane from `controlplane`, which needs neither Django nor any app.
LOCAL_RUNTIME = {"provisioning/runtimes/local.py"}
APPS_AND_HELPERS = {"django", "accounts", "vclusters", "provisioning", "gateway", "gitops", "portal", "localkube",
                    "syncer", "vcp"}


@pytest.mark.parametrize("app", ["provisioning", "gateway", "gitops"])
def test_only_the_local_runtime_imports_the_emulator(app):
    offending = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in sorted((ROOT / app).rglob("*.py"))
        if str(path.relative_to(ROOT)) not in LOCAL_RUNTIME
        for line, module in _imports(path)
        if _is_forbidden(module, {"localkube"})
    ]
    assert offending == []


def test_the_control_plane_package_imports_no_django_and_no_app():
    offending = [f"{path.relative_to(ROOT)}:{line}: {module}"
                 for path in sorted((ROOT / "controlplane").rglob("*.py"))
                 for line, module in _imports(path) if _is_forbidden(module, APPS_AND_HELPERS)]
    assert offending == []
    code = ("import importlib, pkgutil, sys, controlplane\n"
            "for m in pkgutil.walk_packages(controlplane.__path__, 'controlplane.'): importlib.import_module(m.name)\n"
            "print(' '.join(sorted({n.split('.')[0] for n in sys.modules} & %r)))" % APPS_AND_HELPERS)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []


def _resolved_imports(path: Path):
    """(line, module) for every import in the file, relative ones made absolute."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            module = node.module if node.level == 0 else ".".join(filter(None, [base, node.module]))
            yield node.lineno, module
            yield from ((node.lineno, f"{module}.{alias.name}") for alias in node.names)


def _offending(folder: str, forbidden: set[str]) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{line}: {module}"
            for path in sorted((ROOT / folder).rglob("*.py"))
            for line, module in _resolved_imports(path) if _is_forbidden(module, forbidden)]


def test_runtimes_keep_their_state_through_the_store_not_the_database():
    """A runtime is handed what it keeps (a StateStore); it reads no model."""
    forbidden = {"django.db", "provisioning.models", "vclusters", "accounts", "gitops", "gateway",
                 "provisioning.pipeline", "provisioning.tasks", "provisioning.hostclusters"}
    assert _offending("provisioning/runtimes", forbidden) == []


def test_the_host_cluster_registry_does_not_drive_the_lifecycle():
    """provisioning's two rooms: the registry (hostclusters) says where vclusters may go;
    the lifecycle (pipeline, tasks, signals, manifests, rbac) does the work and asks
    the registry for a placement, never the other way round."""
    lifecycle = {f"provisioning.{m}" for m in ("pipeline", "tasks", "signals", "manifests", "rbac")}
    assert _offending("provisioning/hostclusters", lifecycle) == []


def test_relative_imports_are_resolved():
    modules = {module for _, module in _resolved_imports(ROOT / "provisioning" / "hostclusters" / "services.py")}
    assert {"provisioning.runtimes", "provisioning.models", "provisioning.hostclusters.placement"} <= modules
