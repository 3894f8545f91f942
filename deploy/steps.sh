# Sourced by the deploy checks: each step printed with its duration, under the check's name ($CHECK).
STEP_START=$SECONDS
step() { echo "$CHECK: [$((SECONDS - STEP_START)) s] $1"; STEP_START=$SECONDS; }
say() { echo "$CHECK: $*"; }
die() { echo "$CHECK: FAILED $*"; exit 1; }
