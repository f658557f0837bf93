"""The image cache's directory and the grammar of the names in it.

``[DEFAULT]instances_path/[image_cache]subdirectory_name`` (``_base``)
holds:

- ``<sha1>``: an image's base, named by the sha1 of the image id (Nova's
  name; the same bytes on every host);
- ``<sha1>_<GB>``: a legacy root base grown to <GB> GiB (Nova before
  novaext, and the seeds);
- ``ephemeral_<GB>_<hash>``, ``swap_<MB>``: made on each host by Nova,
  never the same file on two hosts;
- ``<name>.part``: a base being written, renamed to ``<name>`` when whole.
"""

import hashlib
import os
import re

from oslo_config import cfg
from oslo_utils import units

CONF = cfg.CONF

PART_SUFFIX = '.part'

_SHA1 = re.compile(r'[0-9a-f]{40}')
_LEGACY = re.compile(r'([0-9a-f]{40})_([0-9]+)')
_HOST_MADE = re.compile(r'ephemeral_[0-9]+_[0-9a-f]+|swap_[0-9]+')


def base_dir():
    """This host's image cache directory."""
    return os.path.join(CONF.instances_path,
                        CONF.image_cache.subdirectory_name)


def of_image(image_id):
    """The base name of image ``image_id``: sha1 of its id, as Nova names
    it (and as a delta snapshot's ``base_image_id_sha1`` says)."""
    return hashlib.sha1(image_id.encode()).hexdigest()


def is_sha1(value):
    """True if ``value`` is 40 lower-case hex characters."""
    return isinstance(value, str) and bool(_SHA1.fullmatch(value))


def parse_legacy(name):
    """``(sha1, size in bytes)`` for a legacy ``<sha1>_<GB>`` name, else
    None."""
    match = _LEGACY.fullmatch(name)
    if not match:
        return None
    return match.group(1), int(match.group(2)) * units.Gi


def is_image_base(name):
    """True for a base holding an image's bytes: ``<sha1>`` or legacy."""
    return is_sha1(name) or parse_legacy(name) is not None


def is_host_made(name):
    """True for an ephemeral or swap base Nova makes on each host."""
    return bool(_HOST_MADE.fullmatch(name))


def part_of(path):
    """Where the base at ``path`` is written before it is whole."""
    return path + PART_SUFFIX
