#!/usr/bin/env bash
# Build the `kube-lite:dev` image from locally compiled binaries — no registry, no base image.
#
# The image is a minimal root file system assembled from this machine: the release binaries,
# the shared libraries they need (found with ldd), a shell and a few tools for pods, and
# python3 with its standard library (the blog example's web server). `FROM scratch` + COPY.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --workspace --bins
out=target/kube-lite-image
rm -rf "$out"
root="$out/rootfs"
mkdir -p "$root"/{usr/local/bin,bin,usr/bin,usr/lib,etc,tmp,var/lib/kube-lite,data}
chmod 1777 "$root/tmp"

for b in kvstore apiserver scheduler controller-manager kubelet-lite kubectl-lite kube-lite; do
    cp "target/release/$b" "$root/usr/local/bin/"
done
# A shell and the coreutils a pod's `sh -c` script usually needs.
tools=(/bin/sh /bin/sleep /bin/cat /bin/echo /bin/ls /bin/date /bin/mkdir /bin/rm /bin/cp /bin/mv
    /bin/touch /bin/true /bin/false /bin/kill /bin/grep /bin/sed /usr/bin/env /usr/bin/head
    /usr/bin/tail /usr/bin/wc /usr/bin/tr /usr/bin/id /usr/bin/seq /usr/bin/printf
    /usr/bin/python3.11)
for t in "${tools[@]}"; do
    cp -L "$t" "$root$t"
done
ln -s python3.11 "$root/usr/bin/python3"

# Python's standard library, without what a server never imports.
py=/usr/lib/python3.11
if [ -d "$py" ]; then
    tar -C /usr/lib --exclude='python3.11/test' --exclude='python3.11/idlelib' \
        --exclude='python3.11/tkinter' --exclude='python3.11/ensurepip' \
        --exclude='python3.11/lib2to3' --exclude='__pycache__' -cf - python3.11 \
        | tar -C "$root/usr/lib" -xf -
fi

# Every shared library any of those needs, at the path the loader looks for it.
libs() {
    ldd "$1" 2>/dev/null | awk '/=> \//{print $3} /^\s*\/lib/{print $1}'
}
{
    for f in "$root"/usr/local/bin/* "${tools[@]}"; do libs "$f"; done
    find "$root/usr/lib/python3.11/lib-dynload" -name '*.so' 2>/dev/null | while read -r so; do libs "$so"; done
} | sort -u | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
# The loader is also looked up under /lib64.
if [ -e /lib64/ld-linux-x86-64.so.2 ]; then
    mkdir -p "$root/lib64"
    cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
fi

cat > "$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/sh
PASSWD
echo "root:x:0:" > "$root/etc/group"
echo "hosts: files dns" > "$root/etc/nsswitch.conf"

cp deploy/Dockerfile "$out/Dockerfile"
docker build -q -t kube-lite:dev "$out"
echo "built kube-lite:dev ($(du -sh "$root" | cut -f1) root file system)"
