"""Safety checks for a downloaded delta snapshot, before QEMU opens it.

A delta snapshot holds only the clusters its guest wrote above a base; the
image's ``base_image_id_sha1`` property names the base, and novaext points
the delta at ``_base/<sha1>`` itself (``qemu-img rebase -u``). Two forms
are accepted, both a qcow2 without an external data file:

- detached: no backing file at all (what novaext uploads: the image
  service refuses a qcow2 with a backing file), so every check of oslo's
  format inspector must pass;
- named: the backing file is the bare sha1 the image declares, and that is
  the inspector's only failure (what novaext uploaded before glance 29
  began to refuse it; such images may still be in an image service).

Everything else is refused with ImageUnacceptable naming the image."""

from nova import exception
from nova.virt import images
from oslo_utils.imageutils import format_inspector

ALLOWED_FAILURES = frozenset({'backing_file'})


def _refuse(image_id, reason):
    return exception.ImageUnacceptable(image_id=image_id, reason=reason)


def qcow2_problem(path, allowed_failures=ALLOWED_FAILURES):
    """Why oslo's format inspector does not find ``path`` a safe qcow2:
    not a qcow2, unreadable, or a safety check failing that is not in
    ``allowed_failures``; None when it is one."""
    try:
        inspector = format_inspector.detect_file_format(path)
    except format_inspector.ImageFormatError as e:
        return f'unreadable image: {e}'
    if inspector is None or str(inspector) != 'qcow2':
        return f'image content is {inspector} but disk_format is qcow2'
    try:
        inspector.safety_check()
    except format_inspector.SafetyCheckFailed as e:
        unexpected = set(e.failures) - set(allowed_failures)
        if unexpected:
            return 'image fails safety checks: ' + ', '.join(
                sorted(unexpected))
    except format_inspector.ImageFormatError as e:
        return f'image cannot be safety checked: {e}'
    return None


def check_delta_snapshot(path, image_id, disk_format, base_sha1):
    """Check the delta snapshot file at ``path``; raise if it is unsafe.

    :param disk_format: the image's declared disk_format (must be qcow2)
    :param base_sha1: the image's validated base_image_id_sha1
    :raises: ImageUnacceptable
    """
    if disk_format != 'qcow2':
        raise _refuse(image_id, f'delta snapshot must be qcow2, not '
                                f'{disk_format!r}')
    problem = qcow2_problem(path)
    if problem is not None:
        raise _refuse(image_id, problem)

    info = images.qemu_img_info(path, format='qcow2')
    data_file = (info.format_specific or {}).get('data', {}).get(
        'data-file')
    if data_file is not None:
        raise _refuse(image_id, f'qcow2 has an external data file '
                                f'{data_file!r}')
    if info.backing_file not in (None, base_sha1):
        raise _refuse(image_id, f'backing file {info.backing_file!r} is not '
                                f'the declared base {base_sha1}')
    return info
