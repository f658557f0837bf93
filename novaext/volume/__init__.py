"""Libvirt volume drivers of novaext and the registry that finds them."""
