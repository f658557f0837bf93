"""``python -m realhost.cloud up|down|status`` (see scripts/cloud)."""

import argparse
import os
import sys
import time

from realhost.cloud import services as cloud_services

DEFAULT_STATE = '/var/lib/novaext-cloud'


def main():
    parser = argparse.ArgumentParser(prog='cloud',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('action', choices=('up', 'down', 'status'))
    args = parser.parse_args()
    state = cloud_services.State(
        os.environ.get('NOVAEXT_CLOUD_STATE', DEFAULT_STATE))
    services = cloud_services.services(state)
    if args.action == 'up':
        start = time.monotonic()
        for service in services:
            began = time.monotonic()
            try:
                result = service.up()
            except Exception as e:
                print(f'{service.name}: FAILED: {e}\n'
                      f'{service.daemon.log_tail()}', file=sys.stderr)
                return 1
            print(f'{service.name}: {result} '
                  f'({time.monotonic() - began:.1f} s)')
        print(f'cloud up in {time.monotonic() - start:.1f} s; '
              f'source {os.path.join(state.etc, "openrc")}')
    elif args.action == 'down':
        for service in reversed(services):
            stopped = service.down()
            print(f'{service.name}: {"stopped" if stopped else "not running"}')
    else:
        for service in services:
            pid = service.daemon.pid()
            print(f'{service.name}: {f"up (pid {pid})" if pid else "down"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
