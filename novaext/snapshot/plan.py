"""How a snapshot is taken and what it uploads, as two tables.

METHOD: (guest state, live copy possible) -> how the disk is read.
- LIVE: the guest keeps running (or stays paused); its disk is mirrored
  into a new overlay with a block copy (snapshot_live);
- COLD_SAVED: the guest is saved with managedSave, the disk is read, the
  guest is brought back in the state it had (snapshot_cold);
- COLD_STOPPED: the guest is not running; the disk is read as it is.

UPLOAD: (requested mode, base image known) -> what is uploaded.
- FULL: the whole disk, converted by qemu-img to the snapshot format;
- DELTA: only the qcow2 overlay above the base, named by the sha1 of the
  base image's id (snapshot_upload).
A delta is possible only when the root disk is an overlay on a base in
``_base`` whose image is still in the image service (snapshot_base) and
carries, or accepts, the ``image_id_sha1`` label (snapshot_upload).
"""

import enum

from nova.compute import power_state

MODE_PROPERTY = 'novaext_snapshot_mode'
MODES = ('full', 'delta')


class GuestState(enum.Enum):
    RUNNING = 'running'
    PAUSED = 'paused'
    STOPPED = 'stopped'

    @classmethod
    def from_power_state(cls, state):
        """Nova's power state -> the three states a snapshot cares about."""
        return {power_state.RUNNING: cls.RUNNING,
                power_state.PAUSED: cls.PAUSED}.get(state, cls.STOPPED)


class Method(enum.Enum):
    LIVE = 'live block copy'
    COLD_SAVED = 'managedSave, read the disk, restore the state'
    COLD_STOPPED = 'read the disk of a stopped guest'


class Upload(enum.Enum):
    FULL = 'full'
    DELTA = 'delta'


METHOD = {
    # (state, live copy possible)
    (GuestState.RUNNING, True): Method.LIVE,
    (GuestState.RUNNING, False): Method.COLD_SAVED,
    (GuestState.PAUSED, True): Method.LIVE,
    (GuestState.PAUSED, False): Method.COLD_SAVED,
    (GuestState.STOPPED, True): Method.COLD_STOPPED,
    (GuestState.STOPPED, False): Method.COLD_STOPPED,
}

UPLOAD = {
    # (requested mode, base image known)
    ('full', False): Upload.FULL,
    ('full', True): Upload.FULL,
    ('delta', False): Upload.FULL,
    ('delta', True): Upload.DELTA,
}


# Root disks novaext snapshots (and QEMU can mirror into a qcow2 file):
# local files. Any other root disk (rbd, lvm, ploop) takes Nova's own
# snapshot: rbd's direct clone inside Ceph (no pause, no data through the
# host), Nova's cold path for the rest.
LIVE_DISK_TYPES = ('qcow2', 'raw')


def novaext_takes(disk_type):
    """Whether novaext, not Nova, snapshots a root disk of this type."""
    return disk_type in LIVE_DISK_TYPES


def live_possible(disk_type, virt_type, live_disabled, disk_encrypted):
    """Whether QEMU can mirror the root disk into a qcow2 overlay."""
    return (disk_type in LIVE_DISK_TYPES and virt_type in ('kvm', 'qemu') and
            not live_disabled and not disk_encrypted)


def method_for(guest_state, live):
    return METHOD[(guest_state, bool(live))]


def upload_for(mode, base_known):
    return UPLOAD[(mode, bool(base_known))]


def requested_mode(default, *property_sets):
    """The snapshot mode: the first valid ``novaext_snapshot_mode`` found
    in ``property_sets`` (the snapshot request's, then the instance
    image's), else ``default``. Unknown values are ignored."""
    for props in property_sets:
        value = (props or {}).get(MODE_PROPERTY)
        if value in MODES:
            return value
    return default


def scratch_bytes(method, upload, top_bytes, chain_bytes):
    """What a snapshot writes in its scratch directory at most, from the
    bytes allocated to the disk's top layer and to its whole chain: a
    live copy of the top layer (Method.LIVE), then the file uploaded (the
    top layer for a delta, the whole chain read into one for a full)."""
    copy = top_bytes if method is Method.LIVE else 0
    out = top_bytes if upload is Upload.DELTA else chain_bytes
    return copy + out
