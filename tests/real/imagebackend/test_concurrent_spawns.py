"""Eight concurrent spawns of one uncached image download it exactly once."""

import concurrent.futures
import os

from realhost import harness
from tests.real.imagebackend import images

SPAWNS = 8


def _spawn_all(real_host, image_id):
    instances = [real_host.new_instance(image_id, memory_mb=64)
                 for _ in range(SPAWNS)]
    with concurrent.futures.ThreadPoolExecutor(SPAWNS) as pool:
        list(pool.map(real_host.spawn, instances))
    return instances


def _backings(real_host, instances):
    return {harness.qemu_img_info(os.path.join(
        real_host.instance_dir(i), 'disk'))['full-backing-filename']
        for i in instances}


def test_eight_spawns_of_uncached_image_fetch_it_once(real_host, tiny_image):
    image_id = real_host.upload_image(str(tiny_image), 'qcow2')

    instances = _spawn_all(real_host, image_id)

    assert real_host.downloads == {image_id: 1}
    backings = _backings(real_host, instances)
    assert len(backings) == 1
    assert os.path.dirname(backings.pop()) == os.path.join(
        real_host.instances_path, '_base')
    for instance in instances:
        real_host.destroy(instance)


def test_eight_spawns_of_delta_fetch_its_base_once(real_host, tmp_path):
    base_id, base_sha1, base_file, delta_file = images.make_base_and_delta(
        str(tmp_path))
    real_host.upload_image(base_file, 'qcow2', image_id=base_id,
                           properties={'image_id_sha1': base_sha1})
    delta_id = real_host.upload_image(
        delta_file, 'qcow2', properties={'base_image_id_sha1': base_sha1})

    instances = _spawn_all(real_host, delta_id)

    assert real_host.downloads == {base_id: 1, delta_id: SPAWNS}
    assert _backings(real_host, instances) == {
        os.path.join(real_host.instances_path, '_base', base_sha1)}
    for instance in instances:
        real_host.destroy(instance)
