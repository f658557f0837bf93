"""Render the benchmarks' JSON results as one Markdown report with plots.

    python benchmarks/report.py RESULTS_DIR

reads ``spawn.json``, ``resize.json``, ``snapshot.json`` and
``extend.json`` from RESULTS_DIR (any may be missing: the report says so)
and writes ``REPORT.md`` and ``*.png`` there. ``benchmarks/run`` runs the
benchmarks and then this.
"""

import json
import os
import platform
import subprocess
import sys

MiB = 1024 ** 2


def _load(results, name):
    path = os.path.join(results, f'{name}.json')
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _plot(results, filename, title, xlabel, ylabel, series):
    """``series``: {label: [(x, y), ...]}; returns the PNG's name."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot
    fig, ax = pyplot.subplots(figsize=(6, 3.6), dpi=100)
    for label, points in series.items():
        points = sorted(points)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker='o',
                label=label)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(results, filename))
    pyplot.close(fig)
    return filename


def _ratio(part, whole):
    return f'{part / whole:.2f}' if whole else 'n/a (not measured)'


def _table(header, rows):
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '|'.join('---:' for _ in header) + '|']
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


def spawn_section(results, data):
    floor = {f['base_mib']: f['seconds'] for f in data['copy_floor']}
    seconds = {(c.get('path', 'novaext'), c['base_mib'], c['cached']):
               c['seconds'] for c in data['cases']}
    paths = sorted({key[0] for key in seconds}, reverse=True)
    sizes = sorted(floor)
    rows = [(path, size, f'{seconds[(path, size, False)]:.2f}',
             f'{seconds[(path, size, True)]:.2f}', f'{floor[size]:.2f}')
            for path in paths for size in sizes]
    series = {'copy floor (cp)': list(floor.items())}
    for path in paths:
        for cached, label in ((False, 'not cached'), (True, 'cached')):
            series[f'{path} {label}'] = [(size, seconds[(path, size, cached)])
                                         for size in sizes]
    png = _plot(results, 'spawn.png', 'Spawn', 'base MiB',
                'seconds (median)', series)
    cost = _table(
        ['path', 'beside', 'base MiB', 'uncached spawn'],
        [(path, reference, size,
          f'{seconds[(path, size, False)] / seconds[(reference, size, False)] - 1:+.1%}')  # noqa: E501
         for path, reference in data.get('hashing_cost', [])
         for size in sizes])
    return '\n\n'.join([
        '## Spawn (image cache)',
        _table(['path', 'base MiB', 'not cached s', 'cached s',
                'copy floor s'], rows),
        'Cost of verifying bases (novaext beside itself with '
        'verify_bases off; both downloads hashed by glanceclient on the '
        'stream, as all of Nova\'s are):\n\n' + cost,
        f'{data["concurrent_spawns"]} concurrent spawns of one uncached '
        f'image through novaext: {data["downloads"]} download(s).',
        f'![spawn]({png})'])


def downtime_part(results, rows):
    """The downtime case of resize.json: a table, and per link a plot of
    downtime against overlay size for each path (and amount of guest
    writes during the resize)."""
    table = _table(
        ['link', 'path', 'overlay MiB', 'guest writes MiB', 'downtime s',
         'shutdown s', 'transfer in downtime s', 'destination s',
         'sent in downtime MiB', 'pre-copy s', 'pre-copied MiB',
         'catch-up MiB', 'runs'],
        [(r['link'], r['path'], r['overlay_mib'], r['guest_writes_mib'],
          f'{r["downtime_s"]:.2f}', f'{r["shutdown_s"]:.2f}',
          f'{r["transfer_in_downtime_s"]:.2f}', f'{r["dest_prep_s"]:.2f}',
          f'{r["bytes_sent"] / MiB:.1f}',
          f'{r["precopy_s"]:.2f}' if 'precopy_s' in r else '-',
          f'{r["precopy_bytes_sent"] / MiB:.1f}'
          if 'precopy_bytes_sent' in r else '-',
          f'{r["catchup_bytes_sent"] / MiB:.1f}'
          if 'catchup_bytes_sent' in r else '-',
          _runs(r))
         for r in rows])
    plots = []
    for link in sorted({r['link'] for r in rows}):
        series = {}
        for r in rows:
            if r['link'] == link:
                label = (f'{r["path"]}, guest writes '
                         f'{r["guest_writes_mib"]} MiB')
                series.setdefault(label, []).append(
                    (r['overlay_mib'], r['downtime_s']))
        png = _plot(results, f'resize-downtime-{link}.png',
                    f'Resize downtime, {link}', 'overlay MiB',
                    'downtime s (shutdown + transfer + destination)',
                    dict(sorted(series.items())))
        plots.append(f'![downtime {link}]({png})')
    return '\n\n'.join([
        '### Downtime of a resize, end to end',
        'A real guest resized through each driver (benchmarks/downtime.py): '
        'the guest\'s shutdown, the transfer after it and the '
        'destination\'s finish_migration until the guest runs. '
        'novaext-precopy pushes the overlay before the shutdown (pre-copy '
        'columns, not downtime), what the guest wrote meanwhile while it '
        'shuts down (catch-up column, inside the shutdown time), and after '
        'it only the rest. '
        'A case run more than once shows its median run (runs: each '
        'run\'s downtime).',
        table, ' '.join(plots)])


def _runs(row):
    """'1', or 'N (d1, d2, ... s)' for a case run N times."""
    if row.get('runs', 1) == 1:
        return '1'
    return (f'{row["runs"]} ('
            + ', '.join(f'{d:.2f}' for d in row['downtime_s_runs']) + ' s)')


def resize_section(results, data):
    parts = ['## Resize / cold migration disk move']
    if data.get('cases'):
        parts += disk_move_part(results, data)
    if data.get('downtime'):
        parts.append(downtime_part(results, data['downtime']))
    if data.get('targets'):
        parts += ['### Targets (issue 17)', _table(
            ['target', 'case', 'value', 'limit', 'met'],
            [(t['target'], ', '.join(f'{k} {v}' for k, v in
                                     t['case'].items()),
              f'{t["value"]:.2f}', t['limit'],
              'yes' if t['met'] else '**no**') for t in data['targets']])]
    return '\n\n'.join(parts)


def disk_move_part(results, data):
    cases = data['cases']
    for c in cases:
        c.setdefault('link', 'loopback')  # results from before links
    rows = [(c['link'], c['path'], c['base_gib'], c['overlay_mib'],
             f'{c["seconds_min"]:.2f}', f'{c["seconds_median"]:.2f}',
             f'{c["bytes_sent"] / MiB:.1f}',
             _ratio(c['bytes_sent'], c['overlay_allocated_bytes']))
            for c in cases]
    lines = sorted({(c['link'], c['path']) for c in cases})

    def series(fixed_key, fixed, x_key, y):
        return {f'{p} ({link})': [
            (c[x_key], y(c)) for c in cases
            if (c['link'], c['path']) == (link, p) and
            c[fixed_key] == fixed] for link, p in lines}

    seconds = _plot(results, 'resize-overlay.png',
                    'Resize disk move, 2 GiB base', 'overlay MiB written',
                    'seconds (median)',
                    series('base_gib', 2, 'overlay_mib',
                           lambda c: c['seconds_median']))
    by_base = _plot(results, 'resize-base.png',
                    'Resize disk move, 200 MiB overlay', 'base GiB',
                    'seconds (median)',
                    series('overlay_mib', 200, 'base_gib',
                           lambda c: c['seconds_median']))
    sent = _plot(results, 'resize-bytes.png', 'Bytes sent, 2 GiB base',
                 'overlay MiB written', 'MiB sent',
                 series('base_gib', 2, 'overlay_mib',
                        lambda c: c['bytes_sent'] / MiB))
    return [
        _table(['link', 'path', 'base GiB', 'overlay MiB', 'min s',
                'median s', 'sent MiB', 'sent / overlay allocation'], rows),
        f'![seconds by overlay]({seconds}) ![seconds by base]({by_base}) '
        f'![bytes]({sent})']


def snapshot_section(results, data):
    cases = data['cases']
    rows = [(c['path'], c['base_gib'], c['overlay_mib'],
             f'{c["seconds"]:.2f}', f'{c["bytes_uploaded"] / MiB:.1f}',
             _ratio(c['bytes_uploaded'], c['overlay_allocated_bytes']),
             f'{c.get("paused_seconds", 0):.2f}')
            for c in cases]
    paths = sorted({c['path'] for c in cases})
    overlay = max(c['overlay_mib'] for c in cases)
    uploaded = _plot(results, 'snapshot-bytes.png',
                     f'Snapshot upload, {overlay} MiB overlay', 'base GiB',
                     'MiB uploaded',
                     {p: [(c['base_gib'], c['bytes_uploaded'] / MiB)
                          for c in cases if c['path'] == p and
                          c['overlay_mib'] == overlay] for p in paths})
    seconds = _plot(results, 'snapshot-seconds.png',
                    f'Snapshot time, {overlay} MiB overlay', 'base GiB',
                    'seconds',
                    {p: [(c['base_gib'], c['seconds'])
                         for c in cases if c['path'] == p and
                         c['overlay_mib'] == overlay] for p in paths})
    return '\n\n'.join([
        '## Snapshots',
        _table(['path', 'base GiB', 'overlay MiB', 'seconds',
                'uploaded MiB', 'uploaded / overlay allocation',
                'guest not running s'], rows),
        f'![bytes]({uploaded}) ![seconds]({seconds})'])


def extend_section(results, data):
    return '\n\n'.join([
        '## Cloud disk attach / online extend / detach',
        _table(['attach s', 'extend s', 'detach s', 'size before',
                'size after'],
               [(f'{data["attach_s"]:.2f}', f'{data["extend_s"]:.2f}',
                 f'{data["detach_s"]:.2f}', data['size_before'],
                 data['size_after'])])])


SECTIONS = [('spawn', spawn_section), ('resize', resize_section),
            ('snapshot', snapshot_section), ('extend', extend_section)]


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f
                       if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    with open('/proc/meminfo') as f:
        mem_gib = int(f.readline().split()[1]) / 1024 ** 2
    qemu = subprocess.run(['qemu-img', '--version'], capture_output=True,
                          text=True).stdout.splitlines()[0]
    return (f'{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB RAM, '
            f'{platform.platform()}, {qemu}; guests under QEMU TCG '
            f'(software emulation); "hosts" are directories on one '
            f'machine and transfers go over loopback.')


def main(results):
    parts = ['# novaext benchmark report', f'Machine: {machine()}']
    for name, render in SECTIONS:
        data = _load(results, name)
        if data is None:
            parts.append(f'## {name}\n\nnot run ({name}.json missing)')
        else:
            parts.append(render(results, data))
    with open(os.path.join(results, 'REPORT.md'), 'w') as f:
        f.write('\n\n'.join(parts) + '\n')
    print(f'wrote {os.path.join(results, "REPORT.md")}')
    return 0


if __name__ == '__main__':
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
