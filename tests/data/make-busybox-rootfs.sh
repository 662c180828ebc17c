#!/bin/sh
# Builds a minimal busybox root filesystem offline, for tests that need a base image.
#
#   tests/data/make-busybox-rootfs.sh DEST
#
# DEST must not exist (or be an empty directory). It gets /bin/busybox from the busybox-static
# package, one RELATIVE symlink per `busybox --list` applet in /bin (bin/sh -> busybox), and
# /etc/passwd, /etc/group, /etc/hosts, plus the empty directories a runtime expects. Every entry
# gets the same fixed mtime (SOURCE_DATE_EPOCH, default 2024-01-01T00:00:00Z) and fixed
# permissions, so the same busybox gives the same tree, the same layer and the same digest.
set -eu

dest=${1:?usage: make-busybox-rootfs.sh DEST}
busybox=${BUSYBOX:-/bin/busybox}
epoch=${SOURCE_DATE_EPOCH:-1704067200}

if [ ! -x "$busybox" ]; then
  echo "make-busybox-rootfs.sh: $busybox not found (install the busybox-static package)" >&2
  exit 1
fi
# A dynamically linked busybox would need its libraries inside the rootfs.
if ! "$busybox" --list >/dev/null 2>&1; then
  echo "make-busybox-rootfs.sh: $busybox does not run" >&2
  exit 1
fi
if [ -e "$dest" ] && [ -n "$(ls -A "$dest")" ]; then
  echo "make-busybox-rootfs.sh: $dest exists and is not empty" >&2
  exit 1
fi

umask 022
mkdir -p "$dest/bin" "$dest/etc" "$dest/root" "$dest/tmp" "$dest/dev" "$dest/proc" \
  "$dest/sys" "$dest/var" "$dest/home"
chmod 1777 "$dest/tmp"
chmod 0700 "$dest/root"

cp "$busybox" "$dest/bin/busybox"
chmod 0755 "$dest/bin/busybox"
"$busybox" --list | while read -r applet; do
  case "$applet" in
    busybox | */* | '') continue ;;
  esac
  ln -s busybox "$dest/bin/$applet"
done

cat >"$dest/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false
PASSWD
cat >"$dest/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
cat >"$dest/etc/hosts" <<'HOSTS'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
HOSTS
chmod 0644 "$dest/etc/passwd" "$dest/etc/group" "$dest/etc/hosts"

# Fixed ownership (when we can) and mtimes; -h touches symlinks themselves, not their targets.
if [ "$(id -u)" = 0 ]; then
  chown -hR 0:0 "$dest"
fi
find "$dest" -exec touch -h -d "@$epoch" {} +
