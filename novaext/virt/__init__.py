"""The compute driver: Nova's hooks wired to novaext's feature packages."""
