"""Process setup for scripts that drive the real tier outside pytest.

``prepare()`` must run before anything imports Nova's services: it keeps
Nova on native threads (as nova-compute 34 runs) and, if libvirtd does not
answer, starts the services through scripts/start-services.
"""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def prepare(start_services=True):
    """Set up this process; return None, or why the real tier can't run."""
    os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    from nova import monkey_patch
    monkey_patch.patch(backend='threading')

    from realhost import harness
    problem = harness.environment_problem()
    if problem and start_services and os.geteuid() == 0:
        print(f'{problem}: starting services with scripts/start-services',
              flush=True)
        subprocess.run([os.path.join(REPO, 'scripts', 'start-services')],
                       check=False)
        problem = harness.environment_problem()
    return problem
