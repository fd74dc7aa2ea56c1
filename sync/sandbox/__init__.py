"""A local Flowtly emulator (API Platform 4 behaviour) for tests, benchmarks and trials."""

from sync.sandbox._resources import Resource
from sync.sandbox._state import Sandbox
from sync.sandbox.app import create_app
from sync.sandbox.selfcheck import self_check
from sync.sandbox.server import run_server, serve
from sync.sandbox.settings import SandboxSettings

__all__ = [
    "Resource",
    "Sandbox",
    "SandboxSettings",
    "create_app",
    "run_server",
    "self_check",
    "serve",
]
