from novaext.virt.driver import ExtLibvirtDriver  # noqa: F401
