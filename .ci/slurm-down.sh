#!/usr/bin/env bash
# Stop the test cluster that .ci/slurm-up.sh started in DIR (default /tmp/rharm-slurm) and remove DIR.
# Stops only the daemons whose pid files are in DIR (and munged if slurm-up.sh started it); never fails.
DIR=${1:-/tmp/rharm-slurm}
[ -d "$DIR" ] || exit 0
if [ -f "$DIR/slurm.conf" ]; then
  SLURM_CONF=$DIR/slurm.conf scancel --user=root --quiet 2>/dev/null || true
fi
for name in slurmd slurmctld; do
  pid=$(cat "$DIR/$name.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
done
if [ -f "$DIR/munged.started-by-us" ]; then
  pid=$(cat /run/munge/munged.pid 2>/dev/null || true)
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
fi
rm -rf "$DIR"
echo "[slurm-down] stopped the test cluster in $DIR" >&2
exit 0
