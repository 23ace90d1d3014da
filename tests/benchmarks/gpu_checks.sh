#!/usr/bin/env bash
# The GPU half of issues 11 and 14 as one prepared script, for a lent GPU machine (16 cores,
# nothing installable: python3 with torch+CUDA, NCCL, mpi4py, nvcc). Each step has its own
# timeout; logs go to $OUT/<step>.log and a one-line result per step to $OUT/steps.txt.
#   mkdir -p shared/tools && cp ../shared/tools/nccl-tests-src.tar.gz shared/tools/   # here
#   run: OUT=$OUT bash tests/benchmarks/gpu_checks.sh [steps...]    (on the device; default all)
# Steps: pytest-cuda guards gloo-cuda eager nccl-tests predict16 (not yet run on a GPU: the
# step limits add up to 38 minutes, so a 15-minute device session should pick steps).
set -u
OUT=${OUT:-results/gpu-checks}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
CB="python3 -m bench.cli"
QUICK="--launches 1 --repeats 1 --budget 0.2 --no-noise -q --force"

step() {  # step NAME SECONDS COMMAND...: run it, time it, record rc and wall time
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    timeout -k 10 "$limit" bash -c "$*" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "$name rc=$rc wall=$((SECONDS - t0))s limit=${limit}s" | tee -a "$OUT/steps.txt"
}

ROWS="python3 -c 'import csv, sys; [print(r[\"op\"], r[\"nbytes\"], r[\"median_s\"], r[\"busbw_Bps\"], r[\"flags\"]) for r in csv.DictReader(open(sys.argv[1]))]'"

want() { [ -z "$WANTED" ] || [[ " $WANTED " == *" $1 "* ]]; }  # no steps named: all
WANTED="$*"
nvidia-smi -L >"$OUT/gpu.txt" 2>&1; python3 -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.nccl.version())" >>"$OUT/gpu.txt" 2>&1

if want pytest-cuda; then
  step pytest-cuda 240 "python3 -m pytest -q -x tests/test_torch_backends.py tests/test_gpu_guards.py tests/test_gpu_timing.py"
fi
if want guards; then  # issue 11: each must finish within 10 s and be flagged or refused
  for op in broadcast barrier; do
    step "graph-$op" 60 "/usr/bin/time -f '%e s' $CB run --backend nccl -n 1 --cuda-graph --ops $op --sizes 4,1M,1G --out $OUT/graph-$op $QUICK && $ROWS $OUT/graph-$op/summary.csv"
  done
  step timer-cuda 120 "$CB run --backend nccl -n 1 --timer cuda --ops allreduce,allreduce_inplace --sizes 4,1M,64M --out $OUT/timer-cuda $QUICK && $CB report $OUT/timer-cuda"
  step eager-48 300 "/usr/bin/time -f '%e s' $CB run --backend nccl -n 1 --ops allreduce,allgather,reduce_scatter,broadcast,alltoall,barrier --sizes 4:1G:16 --launches 1 --repeats 2 --budget 0.4 --out $OUT/eager-48 -q --force"
  step graph-4 120 "/usr/bin/time -f '%e s' $CB run --backend nccl -n 1 --cuda-graph --ops allreduce,allreduce_inplace --sizes 4,64K,1M,64M --out $OUT/graph-4 $QUICK"
fi
if want gloo-cuda; then  # default options: every collective gloo runs on CUDA tensors
  step gloo-cuda 300 "$CB run --backend gloo --device cuda -n 2 --launches 1 --out $OUT/gloo-cuda --force && $CB run --backend gloo --device cuda -n 4 --ops allreduce,allgather,reduce_scatter,broadcast,alltoall,barrier --sizes 4:16M:16 $QUICK --out $OUT/gloo-cuda-4"
fi
if want eager; then
  step eager-overhead 240 "python3 tests/benchmarks/perf_torch_eager.py --backend nccl --ticks 100"
fi
if want nccl-tests; then
  step nccl-tests 420 "python3 tests/benchmarks/vs_nccl_tests.py --sizes 4:1G:4 --out $OUT/vs-nccl-tests --timeout 300"
fi
if want predict16; then  # issue 14: predict 16 ranks from 2, 4, 8 on 16 cores
  step predict16 420 "python3 tests/benchmarks/check_predict.py --counts 2,4,8,16 --sizes 64:1M:4 --out $OUT/predict16"
fi
echo "results: $OUT/steps.txt"
