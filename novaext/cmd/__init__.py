"""Console scripts of novaext."""
