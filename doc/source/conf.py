# Sphinx configuration of novaext's documentation, built by
# ``tox -e docs`` (sphinx-build -W: a warning fails the build).

import os
import sys
import warnings
from importlib import metadata

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '_ext'))

# The architecture page imports novaext's decision tables, and with them
# Nova, whose futurist imports eventlet, which announces its deprecation.
warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')

extensions = [
    # .. show-options:: novaext, from the oslo.config.opts entry point
    # the sample config is generated from (setup.cfg)
    'oslo_config.sphinxext',
    # .. release-notes::, from releasenotes/notes (reno)
    'reno.sphinxext',
    # .. benchmark::, .. decision-table::, .. pinned-names:: (_ext)
    'novaext_docs',
]

project = 'novaext'
copyright = 'novaext developers'
try:
    release = metadata.version('novaext')
except metadata.PackageNotFoundError:
    release = 'unknown'
version = release

master_doc = 'index'
exclude_patterns = ['_ext']
pygments_style = 'sphinx'

# Where the benchmarks' JSON results are, relative to this directory.
novaext_benchmark_results = os.path.join('..', '..', 'benchmarks',
                                         'results')

# Sphinx's own theme: openstackdocstheme would present these pages as the
# OpenStack Foundation's (its header, footer and links to
# docs.openstack.org), which novaext, an out-of-tree driver, is not.
html_theme = 'alabaster'
html_theme_options = {
    'description': 'Out-of-tree Nova libvirt driver',
    'fixed_sidebar': True,
    'page_width': '1100px',
    'sidebar_width': '230px',
}
html_title = f'novaext {release}'
