import pytest

from bench.core.errors import UsageError
from bench.spawn import flavor_of, mpiexec_argv, mpiexec_env
from bench.world import detect_world, World
from bench.core.units import parse_rate, parse_size, parse_sizes


def test_sizes():
    assert parse_size("4") == 4 and parse_size("64K") == 65536 and parse_size("2m") == 2 << 20
    assert parse_size("1G") == 1 << 30 and parse_size("8KiB") == 8192
    # one rule (bench.core.units): explicit units mean what they say, a bare prefix is binary
    # in a size and decimal in a rate (the units the tables print: KiB, GB/s)
    assert parse_size("1MiB") == parse_size("1Mi") == 1 << 20 and parse_size("1MB") == 10**6
    assert parse_size("64kB") == 64000
    assert parse_rate("4G") == 4e9 == parse_rate("4GB/s") and parse_rate("1GiB/s") == 1 << 30
    assert parse_sizes("1:16") == [1, 2, 4, 8, 16]
    assert parse_sizes("4:4M:4")[-1] == 4 << 20 and len(parse_sizes("4:4M:4")) == 11
    assert parse_sizes("1K,4,1K") == [4, 1024]
    assert parse_sizes("0:4") == [0, 1, 2, 4]


@pytest.mark.parametrize("bad", ["-4", "4X", "", "1:2:1", "8:4", "1:2:x", "a:b", "1:2:3:4", "1.5K"])
def test_bad_sizes_are_usage_errors(bad):
    with pytest.raises(UsageError):
        parse_sizes(bad)


def test_open_mpi_argv_oversubscribes_only_beyond_the_cores():
    cmd = ["python", "-m", "bench.cli", "run"]
    assert mpiexec_argv(["mpiexec"], "openmpi", 2, 2, cmd) == ["mpiexec", "-n", "2"] + cmd
    assert mpiexec_argv(["mpiexec"], "openmpi", 4, 2, cmd) == [
        "mpiexec", "-n", "4", "--oversubscribe", "--mca", "mpi_yield_when_idle", "1"] + cmd
    assert mpiexec_argv(["srun", "--mpi=pmix"], "slurm", 4, 2, cmd) == [
        "srun", "--mpi=pmix", "-n", "4"] + cmd
    assert mpiexec_argv(["mpiexec"], "mpich", 4, 2, cmd) == ["mpiexec", "-n", "4"] + cmd


def test_root_gets_open_mpi_permission_only_for_open_mpi():
    assert mpiexec_env("openmpi", True, {})["OMPI_ALLOW_RUN_AS_ROOT"] == "1"
    assert "OMPI_ALLOW_RUN_AS_ROOT" not in mpiexec_env("openmpi", False, {})
    assert "OMPI_ALLOW_RUN_AS_ROOT" not in mpiexec_env("mpich", True, {})


def test_flavor_from_version_text():
    assert flavor_of("mpiexec (Open MPI) 5.0.11") == "openmpi"
    assert flavor_of("HYDRA build details:\n    Version: 4.2.0") == "mpich"
    assert flavor_of("slurm 23.02.7") == "slurm"


def test_detect_world():
    assert detect_world({}) is None
    assert detect_world({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "4",
                         "OMPI_COMM_WORLD_LOCAL_RANK": "1"}) == World("openmpi", 1, 4, 1)
    assert detect_world({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}) == World("torchrun", 0, 2, 0)
    assert detect_world({"PMI_RANK": "3", "PMI_SIZE": "8"}) == World("hydra", 3, 8, 0)
    # an sbatch script is not a job step; srun is
    assert detect_world({"SLURM_PROCID": "0", "SLURM_NTASKS": "4"}) is None
    assert detect_world({"SLURM_PROCID": "2", "SLURM_NTASKS": "4", "SLURM_STEP_ID": "0",
                         "SLURM_LOCALID": "0"}) == World("slurm", 2, 4, 0)
