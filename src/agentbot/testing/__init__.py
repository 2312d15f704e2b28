"""Test helpers shipped with agentbot: real network seams for tests of any package.

Nothing here patches boto3; each helper is a server on 127.0.0.1 that tests point
clients at.
"""

from .fault_proxy import Fault, FaultProxy

__all__ = ["Fault", "FaultProxy"]
