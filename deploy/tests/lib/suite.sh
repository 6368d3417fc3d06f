# shellcheck shell=bash
# deploy/tests/lib/suite.sh — what the suites in deploy/tests/ share, sourced
# by them (not a suite itself: deploy/test runs only the executable files of
# deploy/tests/).
#
#   SUITE=name; source "$ROOT/deploy/tests/lib/suite.sh"
#   suite_stack_env PORT           VOICEPROD_DEV_* for a stack of the suite's own:
#                                  .cache/stack-$SUITE, PORT and the next three,
#                                  database voiceprod_$SUITE, AMQP prefix "$SUITE."
#   suite_python_venv DIR REQS     a venv at DIR with the hash-pinned requirements
#                                  file REQS installed (again only when REQS changes)
#   suite_fresh_stack              a fresh database, deploy/dev up, stopped on exit
#                                  (SUITE_KEEP=1 leaves it running); sources its env
#                                  (VOICEPROD_URL, VOICEPROD_API_KEY)
# Works as root with no input on a fresh Debian 12 machine (installs
# python3-venv, curl and the PostgreSQL client when missing).

suite_say() { printf '==> %s\n' "$*"; }
suite_die() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}

suite_apt_install() { # packages...
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    suite_say "installing $*"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@" >/dev/null
}

suite_stack_env() { # port
    export VOICEPROD_DEV_DIR="$ROOT/.cache/stack-$SUITE"
    export VOICEPROD_DEV_PORT="$1"
    export VOICEPROD_DEV_DATABASE="voiceprod_${SUITE//-/_}"
    export VOICEPROD_DEV_AMQP_PREFIX="$SUITE."
}

suite_python_venv() { # dir requirements-file
    local venv=$1 reqs=$2 missing=() stamp want
    command -v python3 >/dev/null || missing+=(python3)
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
    if ((${#missing[@]})); then suite_apt_install "${missing[@]}"; fi
    stamp="$venv/.requirements.sha256"
    want=$(sha256sum "$reqs" | cut -d' ' -f1)
    if [[ -x $venv/bin/python && $(cat "$stamp" 2>/dev/null) == "$want" ]]; then
        return 0
    fi
    suite_say "setting up ${venv#"$ROOT"/} from ${reqs#"$ROOT"/}"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --require-hashes -r "$reqs"
    echo "$want" >"$stamp"
}

suite_stop_stack() {
    [[ -n ${SUITE_KEEP:-} ]] || deploy/dev down >/dev/null 2>&1 || true
}

suite_fresh_stack() {
    local missing=()
    command -v curl >/dev/null || missing+=(curl)
    command -v psql >/dev/null || missing+=(postgresql-client)
    if ((${#missing[@]})); then suite_apt_install "${missing[@]}"; fi
    suite_say "a fresh stack on port $VOICEPROD_DEV_PORT (database $VOICEPROD_DEV_DATABASE)"
    trap suite_stop_stack EXIT
    deploy/dev down >/dev/null 2>&1 || true
    rm -rf "$VOICEPROD_DEV_DIR"
    local psql=(psql -X -q -At -h 127.0.0.1 -p 5432 -U postgres -d postgres)
    # (DROP DATABASE waits for a checkpoint even when there is nothing to drop.)
    if [[ -n $(PGCONNECT_TIMEOUT=5 "${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$VOICEPROD_DEV_DATABASE'") ]]; then
        PGCONNECT_TIMEOUT=5 "${psql[@]}" -c "DROP DATABASE $VOICEPROD_DEV_DATABASE WITH (FORCE)"
    fi
    deploy/dev up
    set -a
    # shellcheck disable=SC1091 # written by deploy/dev up
    source "$VOICEPROD_DEV_DIR/env"
    set +a
    [[ -n ${VOICEPROD_URL:-} && -n ${VOICEPROD_API_KEY:-} ]] || suite_die "deploy/dev wrote no URL or key"
}
