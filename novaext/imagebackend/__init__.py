"""Image backend of novaext (the qcow2 base cache and backing files)."""
