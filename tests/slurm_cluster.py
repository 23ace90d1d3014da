"""A real Slurm on the emulated cluster of tests/netns_cluster.py (needs root and Debian's
`slurmctld slurmd slurm-client libpmix-dev`, which .ci/run installs).

`slurmctld` runs in the `head` namespace (host name `head`), one `slurmd` in each node's
namespace under that node's host name, so srun's tasks see the node's name and address exactly
as on a cluster. No munge: `AuthType=auth/none`, `CredType=cred/none` (every daemon is root's
and only reachable inside the namespaces made here). No cgroups: `proctrack/pgid`, `task/none`.
Clients (srun, salloc, sbatch, sinfo, scontrol) run in the head namespace with `SLURM_CONF`
pointing at this cluster's own slurm.conf; nothing under /etc/slurm is read or written.

    with SlurmCluster(4) as slurm:
        slurm.client(["srun", "--mpi=pmix", "-N", "4", "-n", "4", "hostname"])
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from tests import netns_cluster
from tests.netns_cluster import HEAD_ADDRESS, SUBNET, Builds, Cluster

CPUS_PER_NODE = 2     # what each slurmd offers: two tasks per node at most
START_TIMEOUT_S = 30
DAEMONS = ("nsenter", "slurmctld", "slurmd", "srun", "salloc", "sbatch", "sinfo", "scontrol", "squeue")
PMIX_LIBRARY = "libpmix.so"  # what Slurm's mpi/pmix plugin loads: libpmix-dev ships this name


def why_not() -> str | None:
    """Why a Slurm test cluster cannot be built here, or None."""
    reason = netns_cluster.why_not()
    if reason:
        return reason
    missing = [tool for tool in DAEMONS if shutil.which(tool) is None]
    if missing:
        return ("Slurm not installed (missing " + ", ".join(missing) + "): apt-get install "
                "slurmctld slurmd slurm-client libpmix-dev")
    return None


def why_no_pmix() -> str | None:
    """Why `srun --mpi=pmix` cannot start ranks here, or None. Without libpmix-dev (only
    libpmix2) Slurm's plugin fails with 'can not load PMIx library'."""
    libdirs = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")
    if not any(Path(d, PMIX_LIBRARY).exists() for d in libdirs):
        return "libpmix.so missing (apt-get install libpmix-dev): srun --mpi=pmix cannot start"
    return None


# The network of the namespaces: Open MPI's TCP transport and its runtime stay on it.
OMPI_NETWORK_ENV = {
    "OMPI_MCA_pml": "ob1", "OMPI_MCA_btl": "self,tcp",
    "OMPI_MCA_btl_tcp_if_include": f"{SUBNET}.0/24",
    "OMPI_MCA_oob_tcp_if_include": f"{SUBNET}.0/24",
    "PRTE_MCA_oob_tcp_if_include": f"{SUBNET}.0/24",
    "OMPI_MCA_mpi_yield_when_idle": "1",  # more ranks than the two cores: idle ranks yield
}

SLURM_CONF = """\
ClusterName=commbench
SlurmctldHost=head({head_address})
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
StateSaveLocation={work}/state
SlurmdSpoolDir={work}/spool-%n
TmpFS={work}/node-tmp
SlurmctldPidFile={work}/slurmctld.pid
SlurmdPidFile={work}/slurmd-%n.pid
SlurmctldLogFile={work}/slurmctld.log
SlurmdLogFile={work}/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
SlurmdTimeout=60
MessageTimeout=20
KillWait=5
InactiveLimit=0
{nodes}
PartitionName=emulated Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def _die_with_parent():  # pragma: no cover - runs in the child between fork and exec
    """A daemon gets SIGTERM when the test process dies, even by SIGKILL (the daemons run in
    the foreground, -D, so the exec chain nsenter/unshare/sh/daemon keeps this setting)."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_errors(text: str, limit: int = 3) -> str:
    """The first error lines of the daemons' logs, for a skip reason."""
    import re

    lines = [re.sub(r"^\[[^]]*\] ", "", line.strip()) for line in text.splitlines()]
    benign = ("state file", "NOTE:")  # a fresh controller has no saved state: not a cause
    fatal = [line for line in lines if "fatal" in line]
    errors = [line for line in lines if "error" in line and not any(b in line for b in benign)]
    found = list(dict.fromkeys(fatal + errors))[:limit]
    return "; ".join(found) or text.strip()[-300:]


class SlurmStartError(RuntimeError):
    """The cluster did not come up (the daemons' logs say why)."""


class SlurmCluster(Builds):
    """slurmctld + one slurmd per emulated node node0..node{N-1}; see the module docstring."""

    def __init__(self, nnodes: int = 4):
        self.net = Cluster(nnodes)
        self.nodes = self.net.nodes
        self.work = self.net.workdir / "slurm"
        self.conf = self.work / "slurm.conf"
        self.tmpfs = self.work / "node-tmp"  # each daemon sees its own directory here
        self.daemons: list[subprocess.Popen] = []

    # --- starting ------------------------------------------------------------------------
    def _build(self):
        self.net.__enter__()
        self._start()

    def _start(self):
        self.work.mkdir(parents=True)
        (self.work / "state").mkdir()
        self.tmpfs.mkdir()
        nodes = "\n".join(f"NodeName={node} NodeAddr={self.net.address(node)} "
                          f"CPUs={CPUS_PER_NODE} State=UNKNOWN" for node in self.nodes)
        self.conf.write_text(SLURM_CONF.format(head_address=HEAD_ADDRESS, work=self.work,
                                               nodes=nodes))
        # slurmd reads cgroup.conf beside slurm.conf. Untested here (this host mounts cgroup
        # v1): on a cgroup v2 host without systemd, cgroup/v2 goes on without its scope.
        (self.work / "cgroup.conf").write_text("IgnoreSystemdOnFailure=yes\n")
        self._daemon(self.daemon_argv(self.net.head, "head",
                                      ["slurmctld", "-D", "-i", "-f", self.conf]), "slurmctld")
        for node in self.nodes:
            (self.work / f"spool-{node}").mkdir()
            self._daemon(self.daemon_argv(self.net.ns(node), node,
                                          ["slurmd", "-D", "-f", self.conf, "-N", node]),
                         f"slurmd-{node}")
        self.wait_idle()

    def daemon_argv(self, ns: str, hostname: str, argv) -> list:
        """argv in network namespace `ns` under `hostname`, with the node's own TmpFS (a
        private mount namespace binds the node's directory there): the PMIx plugin makes
        /TmpFS/spmix_appdir_<uid>_<job>.<step> on every node, which would collide in one shared
        /tmp. nsenter, not `ip netns exec`: that one remounts /sys, hiding /sys/fs/cgroup, and
        slurmd 22.05 will not start without its cgroup plugin (even with proctrack/pgid)."""
        own_tmp = self.work / f"tmp-{hostname}"
        own_tmp.mkdir(exist_ok=True)
        return ["nsenter", f"--net=/run/netns/{ns}", "unshare", "--uts", "--mount", "sh", "-c",
                'hostname "$0" && mount --bind "$1" "$2" && shift 2 && exec "$@"',
                hostname, own_tmp, self.tmpfs, *map(str, argv)]

    def _daemon(self, argv, name):
        with open(self.work / f"{name}.out", "w") as log:  # the daemon keeps its own copy
            self.daemons.append(subprocess.Popen([str(a) for a in argv], stdout=log,
                                                 stderr=subprocess.STDOUT, env=self.env(),
                                                 start_new_session=True,
                                                 preexec_fn=_die_with_parent))

    def wait_idle(self):
        """Until every node is idle (a finished job's nodes stay `completing` for a moment)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        states = ""
        while time.monotonic() < deadline:
            dead = [p for p in self.daemons if p.poll() is not None]
            if dead:
                raise SlurmStartError(f"a Slurm daemon exited at start: {self.logs()}")
            r = self.client(["sinfo", "-h", "-N", "-o", "%N %t"], timeout=10, check=False)
            states = r.stdout.strip()
            lines = [line.split() for line in states.splitlines() if line.strip()]
            if len(lines) == len(self.nodes) and all(st == "idle" for _, st in lines):
                return
            time.sleep(0.5)
        raise SlurmStartError(f"Slurm nodes not idle after {START_TIMEOUT_S} s ({states!r}): "
                           f"{self.logs()}")

    # --- using ---------------------------------------------------------------------------
    def env(self, base=None, **extra) -> dict:
        """An environment for clients and jobs: this cluster's slurm.conf, Open MPI on the
        emulated network."""
        env = dict(os.environ if base is None else base)
        env = {k: v for k, v in env.items() if not k.startswith("SLURM_")}  # not an outer job's
        env.update(OMPI_NETWORK_ENV)
        env["SLURM_CONF"] = str(self.conf)
        env.update(extra)
        return env

    def client(self, argv, env=None, timeout=120, check=True, cwd=None) -> subprocess.CompletedProcess:
        """Run a Slurm client (srun, salloc, sbatch, sinfo, scontrol ...) from the head."""
        r = subprocess.run(self.net.head_argv(argv), capture_output=True, text=True, check=False,
                           timeout=timeout, env=self.env(env), cwd=cwd)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, argv))} exited {r.returncode}:\n"
                                 f"{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
        return r

    def node_state(self, node: str) -> str:
        """sinfo's long state of one node: 'idle', 'drained', 'allocated', ..."""
        return self.client(["sinfo", "-h", "-n", node, "-o", "%T"]).stdout.strip()

    def wait_job(self, job_id: str, timeout: float = 240) -> str:
        """Wait until the job has left the queue; its final state from scontrol."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.client(["scontrol", "-o", "show", "job", job_id], check=False)
            state = next((w.split("=", 1)[1] for w in r.stdout.split() if w.startswith("JobState=")),
                         "")
            if state and state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
                return state
            time.sleep(0.5)
        raise AssertionError(f"job {job_id} still queued after {timeout} s")

    def logs(self, tail=1500) -> str:
        parts = []
        for path in sorted(self.work.glob("*.log")) + sorted(self.work.glob("*.out")):
            text = path.read_text(errors="replace")[-tail:]
            if text.strip():
                parts.append(f"--- {path.name}\n{text}")
        return "\n".join(parts)

    # --- stopping ------------------------------------------------------------------------
    def close(self):
        """Stop the daemons (and every job step still inside a namespace: the namespaces'
        own teardown kills what is left), then remove the namespaces and files."""
        for p in self.daemons:
            if p.poll() is None:
                p.terminate()
        for p in self.daemons:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        self.daemons = []
        self.net.close()
