"""Turning a snapshot's source disk into the file that is uploaded.

Two shapes, both made with qemu-img while nothing writes the source (a
stopped or saved guest's disk, or a live snapshot's finished copy):

- ``extract_full`` / ``extract_backend_disk``: the whole disk as one
  image in the snapshot format (Nova's ``extract_snapshot`` or its image
  backend's ``snapshot_extract``: ``qemu-img convert``, compressed when
  ``[libvirt] snapshot_compression`` is set and the format is qcow2);
- ``extract_delta``: only the source's top layer, as a qcow2 with no
  backing file (detached): ``qemu-img convert -B <base>`` copies the
  clusters the top layer holds and nothing of the base, then ``qemu-img
  rebase -u -b ''`` drops the backing file from its header. The base is
  named by the image's ``base_image_id_sha1`` property only; novaext's
  image backend points the delta back at it when it boots one
  (imagebackend.image_safety, qcow2). Detached because the image service
  refuses a qcow2 with a backing file: Glance inspects every upload of a
  ``bare`` container and fails one whose format inspector reports a
  backing file ("Image failed safety checks"; glance 29 onwards, not
  configurable), which is also what Nova's own format inspector refuses.

Progress is the output file's growth (novaext.progress.watch_file).
"""

from nova.virt import images
from nova.virt.libvirt import utils as libvirt_utils
from oslo_config import cfg

from novaext import progress as novaext_progress
from novaext import qemu_img

CONF = cfg.CONF


def extract_full(source, source_format, out, out_format, progress):
    """The whole of a qcow2 chain (a live copy) as one image."""
    with novaext_progress.watch_file(out, progress):
        libvirt_utils.extract_snapshot(source, source_format, out,
                                       out_format)


def extract_backend_disk(root_disk, out, out_format, progress):
    """The whole disk through Nova's image backend (any backend type:
    qcow2, raw, lvm, rbd, ploop), as Nova's cold snapshot does."""
    with novaext_progress.watch_file(out, progress):
        root_disk.snapshot_extract(out, out_format)


def extract_delta(source, base_path, out, progress, compress=None):
    """Write ``source``'s top layer to ``out``: a detached qcow2 (no
    backing file) holding what ``source`` holds above ``base_path``.

    :param source: a qcow2 whose backing file is ``base_path``
    :param compress: compress clusters; default [libvirt]
        snapshot_compression
    """
    if compress is None:
        compress = CONF.libvirt.snapshot_compression
    base_format = images.qemu_img_info(base_path).file_format
    with novaext_progress.watch_file(out, progress):
        qemu_img.convert_above(source, base_path, base_format, out,
                               compress)
    qemu_img.detach_backing(out)
