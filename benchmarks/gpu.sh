#!/usr/bin/env bash
# Every GPU check and benchmark of graphfuse in one call (issue 14, item 7), for a GPU that is
# lent only briefly: under eight minutes on one H200-class GPU, each step with its own time
# limit inside one overall budget, a summary written as it goes (a step that fails or runs out
# of time costs only itself).
#
#   bash benchmarks/gpu.sh [OUT_DIR]        # default OUT_DIR: gpu-results/
#
# Runs from the source tree (PYTHONPATH=src, nothing installed) with the machine's own Python
# and PyTorch (checked with Python 3.12, PyTorch 2.11, Lightning, torchvision; Triton ships with
# PyTorch's CUDA wheels). Steps that build a model from a config need jsonargparse (and a
# PedGraph+ config with entmax15 attention needs entmax); where they are missing those steps are
# skipped and say so, unless WHEELS names a folder of wheels to bring them along, installed into
# a temporary folder first (make it where pip works with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 -d WHEELS \
#       "jsonargparse[signatures]" docstring-parser typeshed-client entmax
# and carry it with the source tree).
#
# Environment: PYTHON (default python3), GPU_SH_BUDGET (seconds, default 450),
# GPU_SH_SMOKE=1 (tiny sizes on the CPU: shows that the script and its steps run, e.g. in the
# test suite; measures nothing).
#
# Steps (GPU):
#   env        nvidia-smi, versions
#   kernels    the fused Triton shift kernels against the PyTorch path, compiled, on CUDA tensors
#              (tests/layers/triton_shift_checks.py -k cuda)
#   train      Shift-GCN training step, batch 64, T = 300: fp32/bf16 x PyTorch/Triton shifts
#   infer      the same in eval mode
#   bf16       bf16 autocast vs fp32 logits and gradients (real scale), and the shift alone
#   gait, mlgcn, two_stream, fusion   the other families' model benchmarks on the GPU
#   loading    data loading vs cached batches, steps on the GPU (needs jsonargparse)
#   compile    Shift-GCN training step under torch.compile (fp32), both shift formulations
# Exit status: the number of steps that failed or were skipped for want of time (0: all ran).
# Results: OUT_DIR/summary.md (every step's table) and OUT_DIR/full.log; copy the tables into
# docs/benchmarks.md with the machine's name.

set -u
cd "$(dirname "$0")/.."
OUT=${1:-gpu-results}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
BUDGET=${GPU_SH_BUDGET:-450}
SMOKE=${GPU_SH_SMOKE:-0}
export PYTHONPATH="$PWD/src:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
SUMMARY="$OUT/summary.md"
FULL="$OUT/full.log"
: >"$SUMMARY"
: >"$FULL"
START=$(date +%s)
STATUS=()
FAILED=0

if [ -n "${WHEELS:-}" ]; then
    SITE=$(mktemp -d)
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$WHEELS"/*.whl \
        && export PYTHONPATH="$PYTHONPATH:$SITE"
fi

# step NAME LIMIT_S COMMAND...: run with the smaller of its limit and the budget left.
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - ($(date +%s) - START)))
    if [ "$left" -lt 10 ]; then
        STATUS+=("$name: skipped (budget spent)")
        FAILED=$((FAILED + 1))
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    local t0 rc
    t0=$(date +%s)
    echo "== $name ($*) limit ${limit}s" | tee -a "$FULL"
    timeout -k 5 "$limit" "$@" >"$OUT/.step.log" 2>&1
    rc=$?
    cat "$OUT/.step.log" >>"$FULL"
    {
        echo "## $name (rc $rc, $(($(date +%s) - t0)) s)"
        echo
        # the tables and the result lines, not the warnings
        grep -E '^(\||#|[a-z_]+ .*(passed|failed|error)|[0-9]+ (passed|failed)|=+ .*(passed|failed))' "$OUT/.step.log" \
            || tail -n 5 "$OUT/.step.log"
        echo
    } >>"$SUMMARY"
    rm -f "$OUT/.step.log"
    STATUS+=("$name: rc $rc")
    [ "$rc" = 0 ] || FAILED=$((FAILED + 1))
}

has() { "$PY" -c "import $1" >/dev/null 2>&1; }

if [ "$SMOKE" = 1 ]; then
    DEV=cpu
    SG=(--frames 16 --batch 2 --steps 1 --threads 1 --allocator default)
    KERNELS=(torch)  # the Triton kernels run on CPU tensors only in the interpreter: step "kernels"
    DTYPES=(fp32)
    step env 30 "$PY" -c "import torch, platform; print('# torch', torch.__version__, 'python', platform.python_version())"
    step kernels 120 "$PY" -m pytest -q -p no:cacheprovider tests/layers/test_shift_triton.py
else
    DEV=cuda
    SG=(--frames 300 --batch 64 --steps 10 --threads 4 --allocator default)
    KERNELS=(torch triton)
    DTYPES=(fp32 bf16)
    step env 30 sh -c "nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; \
        $PY -c \"import torch, triton, platform; print('# torch', torch.__version__, 'triton', triton.__version__, \
        'python', platform.python_version(), torch.cuda.get_device_name())\""
    step kernels 150 "$PY" -m pytest -q -p no:cacheprovider tests/layers/triton_shift_checks.py -k cuda
fi
step train 150 "$PY" benchmarks/shiftgcn.py --device $DEV "${SG[@]}" --dtypes "${DTYPES[@]}" \
    --kernels "${KERNELS[@]}" --skip-shift
step infer 90 "$PY" benchmarks/shiftgcn.py --device $DEV "${SG[@]}" --dtypes "${DTYPES[@]}" \
    --kernels "${KERNELS[@]}" --skip-shift --inference
step bf16 60 "$PY" benchmarks/shiftgcn.py --device $DEV "${SG[@]}" --kernels auto --skip-model --check-bf16
if [ "$SMOKE" = 1 ]; then
    step gait 60 "$PY" benchmarks/gait.py --device cpu --models gaitset --p 2 --k 2 --frames 4 --size 64 \
        --test-batch 2 --test-frames 6 --steps 1 --threads 1
    step loading 120 sh -c "if $PY -c 'import jsonargparse' 2>/dev/null; then $PY benchmarks/data_loading.py \
        --device cpu --families pie --steps 1 --seconds 0 --warmup 1; else echo 'skipped: jsonargparse missing'; fi"
else
    step gait 60 "$PY" benchmarks/gait.py --device cuda --steps 5 --threads 4
    step mlgcn 60 "$PY" benchmarks/mlgcn.py --device cuda --batch 32 --steps 5 --precision bf16 --threads 4
    step two_stream 45 "$PY" benchmarks/two_stream.py --device cuda --batch 16 --steps 5 --threads 4
    step fusion 30 "$PY" benchmarks/fusion_layers.py --device cuda --threads 4
    if has jsonargparse; then
        step loading 120 "$PY" benchmarks/data_loading.py --device cuda --families ntu pie casia-b --threads 4
    else
        STATUS+=("loading: skipped (jsonargparse missing; see WHEELS in this script's header)")
    fi
    # Last: compiling takes minutes; it gets what the budget has left. 'auto' = the four-tap
    # formulation inductor fuses on GPUs, 'torch' = the gather + depthwise-convolution one.
    step compile 240 "$PY" benchmarks/shiftgcn.py --device cuda --frames 300 --batch 64 --steps 10 --threads 4 \
        --allocator default --dtypes fp32 --kernels auto torch --skip-shift --compile
fi

{
    echo "## status (total $(($(date +%s) - START)) s of a $BUDGET s budget)"
    echo
    for s in "${STATUS[@]}"; do echo "- $s"; done
} | tee -a "$SUMMARY"
# exit status: the number of steps that failed or did not run for want of time
exit "$FAILED"
