#!/usr/bin/env bash
# One compute "host" of the cloud, run by realhost.cloud inside
# `unshare --mount --uts --propagation private`: its own hostname, its own
# /run/libvirt, /etc/libvirt, /var/lib/libvirt, /var/log/libvirt and
# /var/cache/libvirt (private copies under $HOST_DIR/root), its own view
# of the shared instances path, its own iSCSI initiator name, then
# virtlogd, libvirtd (TCP on $HOST_IP), novaext-rsyncd and nova-compute. PIDs go to $HOST_DIR/pids, outside the
# namespace's private mounts. The namespace lives as long as they do.
set -euo pipefail
: "${HOST_NAME:?}" "${HOST_IP:?}" "${HOST_DIR:?}" "${INSTANCES:?}" \
  "${VENV_BIN:?}" "${NOVA_CONF:?}" "${HOST_CONF:?}" "${ROOT_PATH:?}"
pids=$HOST_DIR/pids
logs=$HOST_DIR/logs
mkdir -p "$pids" "$logs" "$HOST_DIR/instances" "$INSTANCES" \
    "$HOST_DIR/state" "$HOST_DIR/locks"

hostname "$HOST_NAME"
mkdir -p /run/libvirt   # absent where libvirtd never ran (a container)
mount -t tmpfs tmpfs /run/libvirt
for d in /etc/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt; do
    private=$HOST_DIR/root$d
    if [ ! -e "$private/.novaext-copied" ]; then
        mkdir -p "$private"
        cp -a "$d/." "$private/"
        touch "$private/.novaext-copied"
    fi
    mount --bind "$private" "$d"
done
# Nothing of the machine's own libvirt state: no domains, no autostart.
rm -f /etc/libvirt/qemu/*.xml /etc/libvirt/qemu/autostart/* \
      /etc/libvirt/qemu/networks/autostart/*
conf=/etc/libvirt/libvirtd.conf
sed -i -E '/^(listen_tcp|listen_tls|listen_addr|auth_tcp)\b/d' "$conf"
printf 'listen_tcp = 1\nlisten_tls = 0\nlisten_addr = "%s"\nauth_tcp = "none"\n' \
    "$HOST_IP" >> "$conf"
qemu=/etc/libvirt/qemu.conf
sed -i -E '/^(security_driver|cgroup_controllers|user|group)\b/d' "$qemu"
printf 'security_driver = "none"\ncgroup_controllers = [ ]\nuser = "root"\ngroup = "root"\n' >> "$qemu"
mount --bind "$HOST_DIR/instances" "$INSTANCES"
# Its own iSCSI initiator name, as open-iscsi gives a real host: Nova's
# volume connector (os-brick) reads it and Cinder's target needs it; in
# qemu mode novaext has QEMU's initiator log in with it. (The machine gets
# an empty /etc/iscsi as the mount point.)
mkdir -p /etc/iscsi "$HOST_DIR/root/etc/iscsi"
printf 'InitiatorName=iqn.2026-12.org.novaext.cloud:%s\n' "$HOST_NAME" \
    > "$HOST_DIR/root/etc/iscsi/initiatorname.iscsi"
mount --bind "$HOST_DIR/root/etc/iscsi" /etc/iscsi

# The stock-Nova profile (SSH_PORT set): Nova copies disks to its peer
# with scp and probes shared storage with ssh, as root. Each host gets an
# sshd on its own address and a private /root/.ssh (the cloud's key,
# that port); the peer's data passes ssh-throttle.py, which a test can
# slow down through $HOST_DIR/ssh/bwlimit-kib.
if [ -n "${SSH_PORT:-}" ]; then
    : "${SSH_KEY:?}" "${SSH_THROTTLE:?}"
    ssh_dir=$HOST_DIR/ssh
    client=$HOST_DIR/root/root/.ssh
    mkdir -p "$ssh_dir" "$client" /root/.ssh /run/sshd
    [ -e "$ssh_dir/host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$ssh_dir/host_key"
    chmod 700 "$client"
    install -m 600 "$SSH_KEY" "$client/id_ed25519"
    printf 'Host *\n    Port %s\n    IdentityFile /root/.ssh/id_ed25519\n    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n' \
        "$SSH_PORT" > "$client/config"
    mount --bind "$client" /root/.ssh
    /usr/sbin/sshd -f /dev/null -h "$ssh_dir/host_key" \
        -o "ListenAddress $HOST_IP:$SSH_PORT" -o "PidFile $pids/sshd.pid" \
        -o "AuthorizedKeysFile $SSH_KEY.pub" -o "PermitRootLogin prohibit-password" \
        -o "StrictModes no" -o "UsePAM no" -o "PasswordAuthentication no" \
        -o "Subsystem sftp /usr/lib/openssh/sftp-server" \
        -o "ForceCommand /usr/bin/python3 $SSH_THROTTLE $ssh_dir/bwlimit-kib" \
        -E "$logs/sshd.log"
fi

virtlogd -d -p "$pids/virtlogd.pid"
libvirtd -d --listen -p "$pids/libvirtd.pid"
for _ in $(seq 100); do
    [ -S /run/libvirt/libvirt-sock ] && break
    sleep 0.1
done
[ -S /run/libvirt/libvirt-sock ] || { echo "libvirtd did not start" >&2; exit 1; }

"$VENV_BIN/novaext-rsyncd" --config-file "$NOVA_CONF" --config-file "$HOST_CONF" \
    start > "$pids/rsyncd.pid"

# ROOT_PATH: realhost.cloud.services.root_path (a sudo shim for privsep).
PATH=$ROOT_PATH setsid "$VENV_BIN/nova-compute" \
    --config-file "$NOVA_CONF" --config-file "$HOST_CONF" \
    < /dev/null >> "$logs/nova-compute.log" 2>&1 &
echo $! > "$pids/nova-compute.pid"
