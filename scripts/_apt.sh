# Sourced by scripts/get-*.sh. apt_install TAG PACKAGE...: install Debian packages as root, or
# through sudo; messages start with [TAG], and apt's output is shown only when it fails.
apt_install() {
  local tag=$1
  shift
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then sudo=sudo; else
      echo "[$tag] missing Debian package(s) $* and this is not root: run as root" \
           "'apt-get update && apt-get install -y $*'" >&2
      return 1
    fi
  fi
  echo "[$tag] installing the Debian package(s) $*"
  local log
  log=$(mktemp)
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes \
      $sudo apt-get install -y -qq "$@"; } > "$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "[$tag] failed to install $* (apt output above)" >&2
    return 1
  fi
  rm -f "$log"
}
