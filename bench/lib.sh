# lib.sh: what the bench scripts share. Sourced, not run.

# spare_kind DIR: prints "loop" when we may make, mount and drop an ext4
# image below DIR (root, mkfs.ext4, a loop device), else "dir".
spare_kind() {
	local kind=dir
	if [ "$(id -u)" = 0 ] && command -v mkfs.ext4 >/dev/null; then
		mkdir -p "$1/probe"
		if truncate -s 64M "$1/probe.img" && mkfs.ext4 -q -F "$1/probe.img" 2>/dev/null &&
			mount -o loop "$1/probe.img" "$1/probe" 2>/dev/null; then
			umount "$1/probe"
			kind=loop
		fi
		rm -f "$1/probe.img"
		rmdir "$1/probe"
	fi
	printf '%s\n' "$kind"
}
