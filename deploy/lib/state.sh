# shellcheck shell=bash
# The state folders of the local servers (deploy/*/local_server.sh, deploy/celery/local_broker.sh,
# deploy/team/team.sh): pid files, logs and generated secrets. Sourced, not run.
#
# Their default places are predictable names in the shared temporary folder, so another local user
# could create one first and fill it (their own admin.password, a pid file naming a process of
# yours). Hence:
# - a state folder is used only if it is a real folder (not a link) owned by the account that runs
#   the service, with mode 0700; it is created so when missing; anything else is refused, naming the
#   folder and what is wrong, before a file in it is read;
# - everything the scripts create is private to its owner (umask 077: folders 0700, files and logs 0600);
# - a pid file records the process's start time beside its pid, and a stop signals a process only if
#   it is still that one (same start time, same owner, the expected command): a stale or foreign pid
#   file never gets an unrelated process killed.
umask 077

state_refuse() {  # message: one line on stderr, then exit 1
  echo "$(basename "$0"): $1" >&2
  exit 1
}

# private_dir DIR [ACCOUNT]: DIR is a folder owned by ACCOUNT (default this user), mode 0700
private_dir() {
  local dir=$1 account=${2:-$(id -un)} uid owner mode
  uid=$(id -u "$account")
  if [ ! -e "$dir" ] && [ ! -L "$dir" ]; then
    (umask 022; mkdir -p "$(dirname "$dir")")  # parents as before (others may need to traverse them)
    if mkdir -m 0700 "$dir" 2>/dev/null && [ "$uid" != "$(id -u)" ]; then chown "$account" "$dir"; fi
  fi
  { [ -L "$dir" ] || [ ! -d "$dir" ]; } && state_refuse "$dir is not a folder (a link or a file): refusing to use it; remove it or choose another folder"
  owner=$(stat -c %u "$dir")
  mode=$(stat -c %a "$dir")
  [ "$owner" = "$uid" ] || state_refuse "$dir is owned by $(id -un "$owner" 2>/dev/null || echo "uid $owner"), not $account: refusing to trust its files (pid files, passwords); remove it or choose another folder"
  [ "$mode" = 700 ] || state_refuse "$dir has mode 0$mode, not 0700 (others could have written into it): refusing to trust its files; remove it, or chmod 700 it if its contents are yours"
}

start_time() {  # pid: the process's start time (clock ticks since boot, /proc/PID/stat field 22), empty if none
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }  # past "pid (comm) ": the fields from the 3rd on
  # shellcheck disable=SC2086
  set -- $stat
  echo "${20}"
}

record_pid() {  # file pid: the pid and its start time
  printf '%s %s\n' "$2" "$(start_time "$2")" > "$1"
}

# live_pid FILE MARKER: the pid in FILE if that process is still the one recorded there (same start
# time when recorded, this user's, its command line containing MARKER); else nothing (a note on
# stderr when the pid names some other process)
live_pid() {
  local file=$1 marker=$2 pid started
  [ -s "$file" ] || return 0
  read -r pid started < "$file" || true
  case "$pid" in '' | *[!0-9]*) echo "$file does not hold a pid: ignored" >&2; return 0 ;; esac
  [ -d "/proc/$pid" ] || return 0  # gone
  if { [ -n "$started" ] && [ "$started" != "$(start_time "$pid")" ]; } || [ "$(stat -c %u "/proc/$pid")" != "$(id -u)" ] \
      || ! tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker"; then
    echo "$file names process $pid, which is not the one started here: not signalled" >&2
    return 0
  fi
  echo "$pid"
}

# close_inherited_fds: close every descriptor but stdin, stdout and stderr, in a subshell that then
# starts a server: `( close_inherited_fds; exec server ... ) &`. A server started by a script run
# under `flock LOCK script` would otherwise inherit the lock's descriptor and hold the lock as long
# as it lives.
close_inherited_fds() {
  local fd
  for fd in /proc/"$BASHPID"/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
}
