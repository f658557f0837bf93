"""The periodic image-cache cleanup, keeping bases of waiting resize disks.

Nova's manager counts a ``<instance>_resize`` directory (the source copy a
resize or cold migration keeps for revert) as in use only while the
instance is in a resize task state or RESIZED. A resize that failed and
left the instance in ERROR (or reset) still has its only revertible disk
there, and its base must survive too. novaext's manager counts the
``_resize`` directory of every instance it is given, whatever its state;
everything else is Nova's.
"""

from nova.virt.libvirt import imagecache

RESIZE_SUFFIX = '_resize'


class ExtImageCacheManager(imagecache.ImageCacheManager):

    def _list_running_instances(self, context, all_instances):
        running = super()._list_running_instances(context, all_instances)
        for instance in all_instances:
            running['instance_names'].update(
                (instance.name + RESIZE_SUFFIX,
                 instance.uuid + RESIZE_SUFFIX))
        return running
