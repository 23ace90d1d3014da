"""An emulated cluster on this one machine, for the multi-node tests (needs root).

Every node is a network namespace with one veth (`eth0`) on a private bridge and its own host
name (a UTS namespace entered by the launch agent). A separate `head` namespace on the same
bridge runs the launcher, so no address outside the namespaces created here is ever used.
Egress of every node is shaped with `tc htb` (this kernel has no netem, so no delay). Open MPI
reaches the nodes through an rsh agent: a small script that runs the command with
`ip netns exec NODE unshare --uts`. Everything is removed again on exit, also on failure.

    with Cluster(nnodes=3, rate_bps={"node2": 150e6}, default_rate_bps=300e6) as c:
        c.mpirun(["python", "-m", "bench.cli", "run", ...], ranks_per_node=1)

Facts that matter for timing:
- tc counts L2 bytes: a full TCP segment (1448 B payload with timestamps, MTU 1500) leaves as a
  1514 B frame, so payload crosses a link shaped to R bit/s at R/8 × 1448/1514 B/s.
- Receive work of the veths is steered to one CPU (RPS), so the packets of one flow are never
  reordered between per-CPU backlogs (reordering makes TCP back off and the rate drop).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SUBNET = "10.213.0"      # private /24, only inside the namespaces made here
HEAD_ADDRESS = f"{SUBNET}.254"
MTU_FRAME_BYTES = 1514   # what tc htb charges for one full segment (Ethernet header included)
TCP_PAYLOAD_BYTES = 1448  # payload of that segment: MTU 1500 - IP 20 - TCP 20 - timestamps 12
STEP_TIMEOUT_S = 20


def missing_tools() -> list[str]:
    return [tool for tool in ("ip", "tc", "unshare", "hostname") if shutil.which(tool) is None]


def why_not() -> str | None:
    """Why an emulated cluster cannot be built here, or None."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "building network namespaces needs root"
    missing = missing_tools()
    if missing:
        return "missing tools: " + ", ".join(missing)
    return None


def cluster_test_marks() -> list:
    """The marks of a test module that runs ranks on emulated nodes: `multinode` (run last),
    skipped without MPI or where a cluster cannot be built."""
    import pytest

    from tests.conftest import needs_mpi

    return [pytest.mark.multinode, needs_mpi,
            pytest.mark.skipif(why_not() is not None, reason=str(why_not()))]


def payload_seconds_per_byte(rate_bps: float) -> float:
    """Seconds per payload byte of bulk TCP through an htb shaper of rate_bps (L2 bit/s)."""
    return 8.0 / rate_bps * MTU_FRAME_BYTES / TCP_PAYLOAD_BYTES


def _sh(*argv, check=True, timeout=STEP_TIMEOUT_S) -> subprocess.CompletedProcess:
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))}: {r.stderr.strip() or r.returncode}")
    return r


# The launch agent: `agent [ssh options] HOST COMMAND...` runs COMMAND (one shell string, as ssh
# would) in namespace HOST under host name HOST. It inherits the launcher's environment.
AGENT = """#!/bin/sh
while [ $# -gt 0 ]; do
    case $1 in
        -[oplFiE]) shift 2 ;;
        -*) shift ;;
        *) break ;;
    esac
done
host=$1; shift
exec ip netns exec "{prefix}$host" unshare --uts sh -c 'hostname "$0" && exec sh -c "$1"' "$host" "$*"
"""


class Builds:
    """A context manager that builds (_build) on entry and closes on exit, and cleans up
    what it made when the build fails half way."""

    def __enter__(self):
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _build(self):
        raise NotImplementedError

    def close(self):
        raise NotImplementedError


class Cluster(Builds):
    """N emulated nodes named node0..node{N-1}; see the module docstring."""

    def __init__(self, nnodes: int, default_rate_bps: float | None = None,
                 rate_bps: dict | None = None):
        self.nnodes = nnodes
        self.nodes = [f"node{i}" for i in range(nnodes)]
        self.rates = {node: (rate_bps or {}).get(node, default_rate_bps) for node in self.nodes}
        tag = str(os.getpid())  # (pid_max is 7 digits: names stay within 15 characters)
        self.prefix = f"cb{tag}-"           # namespace names: unique per test process
        self.bridge = f"cbbr{tag}"          # interface names are at most 15 characters
        self.head = f"{self.prefix}head"
        self.workdir = Path(tempfile.mkdtemp(prefix="commbench-cluster-"))
        self.agent = self.workdir / "agent"
        self.made_ns: list[str] = []
        self.made_bridge = False

    # --- building ------------------------------------------------------------------------
    def ns(self, node: str) -> str:
        return self.prefix + node

    def address(self, node: str) -> str:
        return f"{SUBNET}.{self.nodes.index(node) + 1}"

    def _build(self):
        remove_stale()
        self.agent.write_text(AGENT.replace("{prefix}", self.prefix))
        self.agent.chmod(0o755)
        _sh("ip", "link", "add", self.bridge, "type", "bridge")
        self.made_bridge = True
        _sh("ip", "link", "set", self.bridge, "up")
        self._add_ns(self.head, HEAD_ADDRESS, "cbh")
        for node in self.nodes:
            self._add_ns(self.ns(node), self.address(node), f"cbv{self.nodes.index(node)}")
            if self.rates[node]:
                self.shape(node, self.rates[node])

    def _add_ns(self, ns: str, address: str, veth_tag: str):
        host_end = f"{veth_tag}-{self.bridge[4:]}"[:15]
        _sh("ip", "netns", "add", ns)
        self.made_ns.append(ns)
        _sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _sh("ip", "link", "set", host_end, "master", self.bridge, "up")
        _sh("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        _sh("ip", "-n", ns, "link", "set", "eth0", "up")
        _sh("ip", "-n", ns, "link", "set", "lo", "up")
        # One CPU takes the receive work of both ends: no reordering within a flow.
        Path(f"/sys/class/net/{host_end}/queues/rx-0/rps_cpus").write_text("1\n")
        _sh("ip", "netns", "exec", ns, "sh", "-c", "echo 1 > /sys/class/net/eth0/queues/rx-0/rps_cpus")
        self._tune_tcp(ns)

    @staticmethod
    def _tune_tcp(ns: str):
        """Keep the congestion window across the idle gaps of a ping-pong (else every message
        starts in slow start again), and prefer reno, which does not pace or probe, over the
        host's default; a namespace may only pick an allowed one, so this is best effort."""
        _sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.tcp_slow_start_after_idle=0",
            check=False)
        _sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.tcp_congestion_control=reno",
            check=False)

    def shape(self, node: str, rate_bps: float):
        """Egress of `node` limited to rate_bps (L2 bits per second) by htb: exact long-run
        rate; whole GSO packets are charged, so bursts stay small."""
        ns, rate = self.ns(node), f"{int(rate_bps)}bit"
        tc = ["ip", "netns", "exec", ns, "tc"]
        _sh(*tc, "qdisc", "replace", "dev", "eth0", "root", "handle", "1:", "htb", "default", "10")
        _sh(*tc, "class", "replace", "dev", "eth0", "parent", "1:", "classid", "1:10", "htb",
            "rate", rate, "ceil", rate, "burst", "16kb", "cburst", "16kb", "quantum", "65536")
        _sh(*tc, "qdisc", "replace", "dev", "eth0", "parent", "1:10", "handle", "10:", "pfifo",
            "limit", "10000")
        self.rates[node] = rate_bps

    # --- running -------------------------------------------------------------------------
    def head_argv(self, argv) -> list[str]:
        """argv run in the launcher namespace, under host name `head`."""
        return ["ip", "netns", "exec", self.head, "unshare", "--uts", "sh", "-c",
                'hostname head && exec "$@"', "sh", *map(str, argv)]

    def node_argv(self, node: str, argv) -> list[str]:
        return ["ip", "netns", "exec", self.ns(node), "unshare", "--uts", "sh", "-c",
                'hostname "$0" && shift && exec "$@"', node, "_", *map(str, argv)]

    def mpirun_options(self, ranks_per_node: int = 1, nodes=None, map_by="node") -> list[str]:
        """Open MPI 5 options that place ranks on `nodes` (default all) over TCP on the
        emulated network; map_by "node" deals ranks out round robin, "slot" fills a node first."""
        nodes = list(nodes or self.nodes)
        nranks = ranks_per_node * len(nodes)
        hosts = ",".join(f"{node}:{ranks_per_node}" for node in nodes)
        opts = ["-n", str(nranks), "--host", hosts, "--map-by", map_by, "--bind-to", "none",
                "--mca", "plm_rsh_agent", str(self.agent),
                "--mca", "pml", "ob1", "--mca", "btl", "self,tcp",
                "--mca", "btl_tcp_if_include", f"{SUBNET}.0/24",
                "--mca", "oob_tcp_if_include", f"{SUBNET}.0/24"]
        if nranks > (os.cpu_count() or 1):
            opts += ["--mca", "mpi_yield_when_idle", "1"]  # idle ranks yield the core
        return opts

    def mpirun(self, mpiexec: str, command, ranks_per_node=1, nodes=None, map_by="node",
               env=None, timeout=300, cwd=None) -> subprocess.CompletedProcess:
        """Run `command` on the nodes with Open MPI's mpirun, launched from the head."""
        argv = [mpiexec, *self.mpirun_options(ranks_per_node, nodes, map_by), *map(str, command)]
        return subprocess.run(self.head_argv(argv), capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=cwd)

    # --- teardown ------------------------------------------------------------------------
    def close(self):
        """Remove everything made here; every step is tried even when an earlier one fails."""
        for ns in self.made_ns:
            self._kill_inside(ns)
        for ns in self.made_ns:
            _sh("ip", "netns", "del", ns, check=False)  # also removes its veth pair
        self.made_ns = []
        if self.made_bridge:
            _sh("ip", "link", "del", self.bridge, check=False)
            self.made_bridge = False
        shutil.rmtree(self.workdir, ignore_errors=True)

    @staticmethod
    def _kill_inside(ns: str):
        """Processes still inside a namespace made here were started by this test."""
        import signal
        import time

        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = _sh("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), sig)
                except (ProcessLookupError, ValueError):
                    pass
            if not pids:
                return
            time.sleep(0.3)


def remove_stale():
    """Namespaces and bridges left by an earlier test process that was killed outright
    (SIGKILL skips every cleanup): names made here carry the maker's pid; remove those whose
    maker is gone. Nothing else is touched."""
    import re

    def gone(pid: str) -> bool:
        return not Path(f"/proc/{pid}").exists()

    for line in _sh("ip", "netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(r"cb(\d+)-(head|node\d+)", name)
        if m and gone(m.group(1)):
            _sh("ip", "netns", "del", name, check=False)
    for line in _sh("ip", "-o", "link", "show", "type", "bridge", check=False).stdout.splitlines():
        m = re.match(r"\d+: (cbbr(\d+))[:@]", line)
        if m and gone(m.group(2)):
            _sh("ip", "link", "del", m.group(1), check=False)
