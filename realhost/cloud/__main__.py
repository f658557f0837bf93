"""``python -m realhost.cloud up|down|status`` (see scripts/cloud)."""

import argparse
import concurrent.futures
import os
import sys
import time

from realhost.cloud import processes
from realhost.cloud import services as cloud_services

DEFAULT_STATE = '/var/lib/novaext-cloud'


def main():
    parser = argparse.ArgumentParser(prog='cloud',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('action', choices=('up', 'down', 'status'))
    parser.add_argument('names', nargs='*', metavar='service',
                        help='only these (e.g. compute1 compute2); '
                             'default: all')
    args = parser.parse_args()
    state = cloud_services.State(
        os.environ.get('NOVAEXT_CLOUD_STATE', DEFAULT_STATE))
    services = cloud_services.services(state)
    unknown = set(args.names) - {s.name for s in services}
    if unknown:
        parser.error(f'no such service: {", ".join(sorted(unknown))}')
    if args.names:
        services = [s for s in services if s.name in args.names]
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
        if not args.names:
            healed = cloud_services.delete_orphan_allocations(state)
            if healed:
                print(f'placement: removed {healed} allocation(s) of '
                      'instances and migrations no longer there (left by '
                      'an earlier run that was cut off)')
        print(f'cloud up in {time.monotonic() - start:.1f} s; '
              f'source {os.path.join(state.etc, "openrc")}')
    elif args.action == 'down':
        # The OpenStack services at once (nova-compute alone can take 30 s
        # to drain), then what they all use, last started first.
        shared = [s for s in services
                  if s.name in cloud_services.INFRASTRUCTURE]
        users = [s for s in services if s not in shared]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            stopped = dict(zip([s.name for s in users],
                               pool.map(lambda s: s.down(), users),
                               strict=True))
        for service in reversed(shared):
            stopped[service.name] = service.down()
        for service in reversed(services):
            print(f'{service.name}: '
                  f'{"stopped" if stopped[service.name] else "not running"}')
    else:
        total = 0
        for service in services:
            pid = service.daemon.pid()
            if pid is None:
                foreign = getattr(service, 'running', lambda: False)()
                print(f'{service.name}: ' + ('running, not started by the '
                                             'cloud' if foreign else 'down'))
                continue
            pids = (service.pids() if hasattr(service, 'pids') else
                    processes.descendants(pid))
            pss = processes.pss_kib(pids)
            total += pss
            print(f'{service.name}: up (pid {pid}), {pss / 1024:.0f} MiB '
                  f'PSS in {len(set(pids))} processes')
        print(f'cloud: {total / 1024:.0f} MiB PSS')
    return 0


if __name__ == '__main__':
    sys.exit(main())
