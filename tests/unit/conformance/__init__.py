"""Nova 34's own libvirt-driver unit tests, run against ExtLibvirtDriver."""
