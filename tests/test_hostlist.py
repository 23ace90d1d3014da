"""Slurm hostlist notation both ways (bench.core.hostlist)."""
import pytest

from bench.core import hostlist
from bench.core.errors import UsageError


@pytest.mark.parametrize("hosts, text", [
    (["n01", "n02", "n03", "n07"], "n[01-03,07]"),
    (["node0012", "node0047"], "node[0012,0047]"),
    (["a"], "a"),
    (["n5"], "n5"),
    (["n3", "n1", "n2", "login", "n2"], "n[1-3],login"),
    (["gpu9", "gpu10"], "gpu9,gpu10"),  # widths differ: no common range in Slurm's notation
])
def test_compress(hosts, text):
    assert hostlist.compress(hosts) == text


def test_round_trip_of_a_thousand_nodes():
    hosts = [f"node{i:04d}" for i in range(1024) if i not in (12, 47)]
    text = hostlist.compress(hosts)
    assert text == "node[0000-0011,0013-0046,0048-1023]"
    assert hostlist.expand_hostlist(text) == hosts


def test_expand():
    assert hostlist.expand_hostlist("n[01-03,07],login1") == ["n01", "n02", "n03", "n07", "login1"]
    assert hostlist.expand_hostlist("rack[1-2]-a") == ["rack1-a", "rack2-a"]


@pytest.mark.parametrize("bad", ["n[01-", "n[3-1]", "n[a-b]", "a,,b", ""])
def test_expand_refuses_malformed(bad):
    with pytest.raises(UsageError):
        hostlist.expand_hostlist(bad)
