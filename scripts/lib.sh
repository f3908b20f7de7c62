# Shared by the bash scripts in scripts/ and .ci/: no script fails silently.
#
#   lb_script_traps NAME   install an ERR trap that prints, on any failing
#                          command, the script, its current step, the command,
#                          the line and what the user can do (LB_HINT)
#   lb_step TEXT           name the step now running (for the ERR message)
#   lb_fail TEXT [HINT]    stop with a message and a hint
#   lb_run CMD...          run a command; on failure report it with its
#                          arguments (the ERR trap only sees "$@" inside a
#                          wrapper function)
#
# Sourced, not run. Scripts that use it run under `set -euo pipefail`.

LB_SCRIPT=${LB_SCRIPT:-script}
LB_STEP=${LB_STEP:-starting}
LB_HINT=${LB_HINT:-}

lb_step() { LB_STEP=$1; }

lb_fail() {
    echo "$LB_SCRIPT: error: $1" >&2
    [ -n "${2:-}" ] && echo "$LB_SCRIPT: hint: $2" >&2
    exit 1
}

lb__on_err() {
    local rc=$1 line=$2 cmd=$3
    trap - ERR
    {
        echo "$LB_SCRIPT: error: step \"$LB_STEP\" failed (exit status $rc)"
        echo "$LB_SCRIPT: command: $cmd"
        echo "$LB_SCRIPT: at ${BASH_SOURCE[-1]:-$0} line $line"
        if [ -n "$LB_HINT" ]; then
            echo "$LB_SCRIPT: hint: $LB_HINT"
        else
            echo "$LB_SCRIPT: hint: run the command above by hand to see why it fails"
        fi
    } >&2
    exit "$rc"
}

lb_run() {
    local rc=0
    "$@" || rc=$?
    [ $rc -eq 0 ] || lb__on_err $rc "${BASH_LINENO[1]:-${BASH_LINENO[0]}}" "$*"
}

lb_script_traps() {
    LB_SCRIPT=$1
    set -o errtrace
    trap 'lb__on_err $? $LINENO "$BASH_COMMAND"' ERR
}
