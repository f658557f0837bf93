"""Nova's periodic image-cache cleanup, run through this driver, keeps the
bases that delta-snapshot instances and migrated disks still use."""

import os
import shutil
import subprocess

from tests.real.imagebackend import images


def _cleanup(real_host, instances):
    real_host.conf_group(
        'image_cache', remove_unused_base_images=True,
        remove_unused_original_minimum_age_seconds=0,
        remove_unused_resized_minimum_age_seconds=0)
    real_host.driver.manage_image_cache(real_host.context, instances)


def _unused_base(real_host):
    path = os.path.join(real_host.instances_path, '_base', 'f' * 40)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', path, '1M'],
                   check=True)
    os.utime(path, (0, 0))
    return path


def _boot_delta(real_host, tmp_path):
    base_id, base_sha1, base_file, delta_file = images.make_base_and_delta(
        str(tmp_path))
    real_host.upload_image(base_file, 'qcow2', image_id=base_id,
                           properties={'image_id_sha1': base_sha1})
    delta_id = real_host.upload_image(
        delta_file, 'qcow2', properties={'base_image_id_sha1': base_sha1})
    instance = real_host.new_instance(delta_id)
    real_host.spawn(instance)
    base = os.path.join(real_host.instances_path, '_base', base_sha1)
    os.utime(base, (0, 0))
    return instance, base


def test_cleanup_keeps_base_of_running_delta_instance(real_host, tmp_path):
    instance, base = _boot_delta(real_host, tmp_path)
    unused = _unused_base(real_host)

    _cleanup(real_host, [instance])

    assert not os.path.exists(unused), 'cleanup did not run'
    assert os.path.exists(base)
    real_host.destroy(instance)


def test_cleanup_keeps_base_of_disk_waiting_in_resize_dir(
        real_host, tmp_path):
    """Even with the instance out of any resize state (a failed resize).

    Nova alone deletes this base: it counts _resize directories only for
    instances in a resize task state or RESIZED.
    """
    instance, base = _boot_delta(real_host, tmp_path)
    instance.vm_state = 'error'
    instance.task_state = None
    real_host.driver.power_off(instance)
    inst_dir = real_host.instance_dir(instance)
    # As a resize source leaves it: only <uuid>_resize holds the disk.
    shutil.move(inst_dir, inst_dir + '_resize')
    unused = _unused_base(real_host)

    _cleanup(real_host, [instance])

    assert not os.path.exists(unused), 'cleanup did not run'
    assert os.path.exists(base)
    shutil.move(inst_dir + '_resize', inst_dir)
    real_host.destroy(instance)
