#!/usr/bin/env bash
# Stop what ./start_mer.sh started, and nothing else: the mer shells it launched (their
# pid files under MER_RUN_DIR/shells) and the database, if start_mer.sh was the one that
# started it (MER_RUN_DIR/db.started). A database that was already running stays up.
# It reads .env as start_mer.sh does (mer's own reader), so it finds the same MER_RUN_DIR.
# A shell removes its own pid file when it exits; one left by a killed shell is removed here.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${MER_VENV:-$here/.venv}"

say() { printf 'stop_mer: %s\n' "$*" >&2; }

export MER_ENV_FILE="${MER_ENV_FILE:-$here/.env}"
if [ -x "$venv/bin/python" ]; then
  exports="$("$venv/bin/python" -m mer.config --export)" || { say "error: cannot read $MER_ENV_FILE"; exit 2; }
  eval "$exports"
fi
run_dir="${MER_RUN_DIR:-$here/.mer-run}"
grace="${MER_STOP_GRACE:-5}"

# Is this pid still one of our mer shells (and not a recycled pid of something else)?
is_mer() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -Eq '(^|/)mer( |$)'; }

stopped=0
if [ -d "$run_dir/shells" ]; then
  for f in "$run_dir"/shells/*.pid; do
    [ -e "$f" ] || continue
    pid="$(cat "$f" 2>/dev/null)" || continue  # its shell exited meanwhile and removed it
    if [[ "$pid" =~ ^[0-9]+$ ]] && is_mer "$pid"; then
      # SIGTERM lets mer finish its access-log rows and stop its workers.
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 $((grace * 10))); do is_mer "$pid" || break; sleep 0.1; done
      if is_mer "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
      stopped=$((stopped + 1))
    fi
    rm -f "$f"
  done
fi
say "stopped $stopped shell(s)"

if [ -f "$run_dir/db.started" ]; then
  read -r how version < "$run_dir/db.started" || true
  case "$how" in
    docker)
      say "stopping the docker compose db service"
      docker compose -f "$here/compose.yaml" stop db >&2 || say "docker compose stop failed"
      ;;
    cluster)
      say "stopping the local PostgreSQL cluster $version/main"
      pg_ctlcluster --skip-systemctl-redirect "$version" main stop >&2 || say "pg_ctlcluster stop failed"
      ;;
  esac
  rm -f "$run_dir/db.started"
fi
