#!/usr/bin/env bash
# Start mer: install it into .venv when needed, pick and start a database, migrate it,
# load the model catalog into a new database (an existing one keeps what admins made of
# it: `mer-migrate sync` shows what the catalog would change), then replace this script
# with the shell (`exec mer "$@"`), so `./start_mer.sh --allow-edit < job.mer` behaves
# exactly like `mer --allow-edit < job.mer`.
#
# Settings come from the environment and from .env (MER_ENV_FILE, default .env beside
# this script), read by mer's own reader (python-dotenv), so this script, mer-migrate and
# mer see the same values; a variable of the environment wins over .env. MER_VENV is read
# from the environment only (.env is read with that venv's python).
#
# Database, first match wins:
#   1. MER_DATABASE_URL when set (from the environment or .env);
#   2. --postgres: `docker compose up -d db` when a Docker engine answers, else the
#      machine's local PostgreSQL cluster (started if it is down);
#   3. the embedded SQLite database (no server at all).
# What this script starts is recorded under MER_RUN_DIR (default .mer-run/) so that
# ./stop_mer.sh stops exactly that and nothing else.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${MER_VENV:-$here/.venv}"

say() { printf 'start_mer: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

use_postgres=0
args=()
for a in "$@"; do
  if [ "$a" = "--postgres" ]; then use_postgres=1; else args+=("$a"); fi
done

# 1. Install mer into the venv when it is missing or older than pyproject.toml.
if [ ! -x "$venv/bin/mer" ] || [ "$here/pyproject.toml" -nt "$venv/.mer-installed" ]; then
  say "installing mer into $venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv" || die "cannot create a virtual environment at $venv (install python3-venv)"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q -e "$here" >&2 || die "pip could not install mer; see the messages above"
  touch "$venv/.mer-installed"
fi

# .env, read by mer's own reader; exported, so mer-migrate and mer read the same file.
export MER_ENV_FILE="${MER_ENV_FILE:-$here/.env}"
env_venv="${MER_VENV-}"
exports="$("$venv/bin/python" -m mer.config --export)" || die "cannot read $MER_ENV_FILE"
eval "$exports"
if [ "${MER_VENV-}" != "$env_venv" ]; then
  say "MER_VENV in $MER_ENV_FILE is not used: set it in the environment (using $venv)"
fi
run_dir="${MER_RUN_DIR:-$here/.mer-run}"
mkdir -p "$run_dir/shells"

# 2. The database.
pg_user="${MER_PG_USER:-mer}"
pg_password="${MER_PG_PASSWORD:-mer}"
pg_db="${MER_PG_DB:-mer}"
pg_port="${MER_PG_PORT:-5432}"
if [ -z "${MER_DATABASE_URL:-}" ] && [ "$use_postgres" = 1 ]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    say "starting PostgreSQL with docker compose"
    docker compose -f "$here/compose.yaml" up -d --wait db >&2 || die "docker compose could not start the db service"
    echo "docker" > "$run_dir/db.started"
    export MER_DATABASE_URL="postgresql+asyncpg://$pg_user:$pg_password@127.0.0.1:$pg_port/$pg_db"
  elif command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    if ! pg_isready -q -h 127.0.0.1 -p "$pg_port"; then
      say "starting the local PostgreSQL cluster $version/main"
      pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || die "could not start PostgreSQL $version/main"
      echo "cluster $version" > "$run_dir/db.started"
      for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p "$pg_port" && break; sleep 0.5; done
    fi
    # The local cluster trusts its own users; create the database on first use.
    pg_user="${MER_PG_USER:-postgres}"
    if ! psql -h 127.0.0.1 -p "$pg_port" -U "$pg_user" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$pg_db'" | grep -q 1; then
      createdb -h 127.0.0.1 -p "$pg_port" -U "$pg_user" "$pg_db" || die "could not create database $pg_db"
    fi
    export MER_DATABASE_URL="postgresql+asyncpg://$pg_user@127.0.0.1:$pg_port/$pg_db"
  else
    die "--postgres needs a Docker engine or a local PostgreSQL cluster; neither was found (or set MER_DATABASE_URL)"
  fi
fi

# 3. Migrate; a new database gets the catalog. Then become the shell, which keeps its pid
#    file (for stop_mer.sh) while it runs and removes it when it exits.
catalog="${MER_CATALOG:-$here/examples/catalog.toml}"
migrate_args=(up)
[ -f "$catalog" ] && migrate_args+=(--if-new --catalog "$catalog")
"$venv/bin/mer-migrate" "${migrate_args[@]}" >&2 || exit $?

if [ "$(command -v mer 2>/dev/null)" != "$venv/bin/mer" ]; then
  say "mer is installed in $venv: run it again as $venv/bin/mer, or after 'source $venv/bin/activate' as mer"
fi
exec "$venv/bin/mer" --pid-file "$run_dir/shells/$$.pid" "${args[@]}"
