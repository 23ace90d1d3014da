"""Every verb's --help: a help text for every option, examples to start from, one name for the
same thing everywhere (-o/--out, RUN_DIR); nccl-tests' habits (-b/-e/-f, op names) work."""
import argparse

import pytest

from bench.cli import COMMANDS, build_parser
from bench.core.errors import UsageError


def subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


@pytest.mark.parametrize("verb", list(COMMANDS))
def test_every_option_has_help_and_every_verb_examples(verb):
    p = subparsers()[verb]
    for action in p._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        assert action.help and action.help.strip(), (verb, action.option_strings or action.dest)
    assert f"commbench {verb}" in (p.epilog or ""), verb  # command lines to start from


def test_one_name_for_the_same_thing():
    verbs = subparsers()
    for verb in ("run", "sweep", "workload", "report", "import", "noise"):
        outs = [a for a in verbs[verb]._actions if "--out" in a.option_strings]
        assert outs and "-o" in outs[0].option_strings, verb
    for verb in ("report", "fit", "links"):
        positional = [a for a in verbs[verb]._actions if not a.option_strings]
        assert positional[0].metavar == "RUN_DIR", verb
    run_help = verbs["run"].format_help()
    assert "group:SIZE:STRIDE" in run_help and "relative" in run_help
    assert all(name in run_help for name in ("mpi", "gloo", "nccl"))  # --backend's choices


def test_noise_has_its_own_few_options():
    options = {s for a in subparsers()["noise"]._actions for s in a.option_strings}
    assert {"--ops", "--sizes", "--budget", "--split"}.isdisjoint(options)
    assert {"-n", "--backend", "--out", "--force"} <= options


def plan_of(*argv):
    from bench.plan import make_plan

    return make_plan(build_parser("run").parse_args(["run", *argv]))


def test_nccl_tests_sizes_and_op_names():
    plan = plan_of("-b", "8", "-e", "128M", "-f", "2", "--ops", "all_reduce,all_gather")
    assert plan.sizes[0] == 8 and plan.sizes[-1] == 128 << 20 and plan.sizes[1] == 16
    assert [op.name for op in plan.ops] == ["allreduce", "allgather"]
    assert plan_of("-e", "64").sizes == [4, 16, 64]  # the others from the default 4:4M:4
    with pytest.raises(UsageError, match="not both"):
        plan_of("-b", "8", "--sizes", "1K")
    with pytest.raises(UsageError, match="did you mean allgather"):
        plan_of("--ops", "allgathr")
