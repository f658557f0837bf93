"""novaext: an out-of-tree Nova libvirt driver.

Nova loads the driver as ``compute_driver = novaext.ExtLibvirtDriver``
through the shim module ``nova.virt.novaext``; the code lives here.
"""
