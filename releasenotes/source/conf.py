# Sphinx configuration of novaext's release notes (reno), built by
# ``tox -e releasenotes``.
extensions = ['reno.sphinxext']
project = 'novaext'
copyright = 'novaext developers'
master_doc = 'index'
html_theme = 'alabaster'
