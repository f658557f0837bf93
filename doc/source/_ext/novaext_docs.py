"""Sphinx directives that write novaext's documentation from its sources.

Nothing here holds a number or a rule of its own: the benchmark pages are
made from the benchmarks' JSON results (``benchmarks/results/*.json``,
written by ``benchmarks/run``), and the architecture page's tables from
the decision tables and the list of pinned Nova names in the code, at
build time. A result file that is missing says so on the page, as
``benchmarks/report.py`` does in ``REPORT.md``.

Directives:

``.. benchmark:: WHAT``
    WHAT is one of ``machine``, ``summary``, ``spawn``, ``spawn-cost``,
    ``resize``, ``resize-notes``, ``downtime``, ``downtime-notes``,
    ``targets``, ``snapshot``, ``extend``, or ``plots SECTION`` (the PNG
    plots ``benchmarks/report.py`` made from the same results; SECTION
    ``spawn``, ``resize`` or ``snapshot``).

``.. decision-table:: DOTTED.NAME``
    A dict keyed by tuples (novaext's decision tables) as a table; option
    ``:header:`` names the key columns and the value column, comma
    separated; ``:where:`` ``MEMBER`` keeps only the rows whose first key
    is the enum member of that name (and drops that column).

``.. pinned-names::``
    ``novaext.nova_internals.PINNED_NAMES`` as a table.
"""

import enum
import importlib
import json
import os
import re

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

LOG = logging.getLogger(__name__)

MiB = 1024 ** 2
RESULTS = ('spawn', 'resize', 'snapshot', 'extend')

# What each path of the results is, in the benchmarks' own words
# (their docstrings).
PATHS = {
    'novaext': 'novaext.ExtLibvirtDriver',
    'noverify': 'novaext with [novaext]verify_bases off',
    'nova34': 'Nova 34\'s own libvirt.LibvirtDriver',
    'novaext-tls': 'novaext over the TLS transport',
    'flatten': 'qemu-img convert of overlay + base into one qcow2, '
               'then that file over one TCP stream',
    'floor': 'dd of the same bytes on the local disk',
    'tcp_floor': 'the same bytes over one TCP stream, fsync\'d',
    'novaext-precopy': 'novaext with [novaext]resize_precopy on',
    'novaext-full': 'novaext, snapshot_mode = full',
    'novaext-delta': 'novaext, snapshot_mode = delta',
}


# -- reading the results ------------------------------------------------

class Results:
    """The JSON results in ``directory``; a missing file is None."""

    def __init__(self, directory):
        self.directory = directory
        self.data = {}
        for name in RESULTS:
            path = self.path(f'{name}.json')
            if os.path.exists(path):
                with open(path) as f:
                    self.data[name] = json.load(f)
            else:
                self.data[name] = None

    def path(self, filename):
        return os.path.join(self.directory, filename)

    def machine(self):
        """The machine line ``benchmarks/report.py`` wrote with these
        results (REPORT.md's ``Machine:``), or None."""
        try:
            with open(self.path('REPORT.md')) as f:
                for line in f:
                    if line.startswith('Machine: '):
                        return line[len('Machine: '):].strip()
        except FileNotFoundError:
            pass
        return None


def _s(seconds):
    return f'{seconds:.2f} s'


def _mib(n_bytes):
    return f'{n_bytes / MiB:.1f} MiB'


def _ratio(part, whole):
    return f'{part / whole:.2f}' if whole else 'n/a'


def _list_table(header, rows, title=None, widths=None):
    """An RST list-table."""
    lines = [f'.. list-table:: {title}' if title else '.. list-table::',
             '   :header-rows: 1']
    if widths:
        lines.append(f'   :widths: {widths}')
    lines.append('')
    for row in [header] + [list(r) for r in rows]:
        first = True
        for cell in row:
            lines.append((('   * - ' if first else '     - ') +
                          str(cell)).rstrip())
            first = False
    lines.append('')
    return lines


def _missing(name):
    return [f'*Not run:* ``{name}.json`` is not in the results.', '']


# -- spawn --------------------------------------------------------------

def _spawn_seconds(data):
    return {(c.get('path', 'novaext'), c['base_mib'], c['cached']):
            c['seconds'] for c in data['cases']}


def spawn_table(results):
    data = results.data['spawn']
    if data is None:
        return _missing('spawn')
    floor = {f['base_mib']: f['seconds'] for f in data['copy_floor']}
    seconds = _spawn_seconds(data)
    paths = sorted({key[0] for key in seconds}, reverse=True)
    rows = [(f'``{path}``', size, f'{seconds[(path, size, False)]:.2f}',
             f'{seconds[(path, size, True)]:.2f}', f'{floor[size]:.2f}')
            for path in paths for size in sorted(floor)
            if (path, size, False) in seconds]
    return _list_table(['path', 'base MiB', 'not cached s', 'cached s',
                        'copy floor (cp) s'], rows,
                       f'Spawn of a {data.get("image_format", "raw")} '
                       f'image (median)') + [
        f'{data["concurrent_spawns"]} concurrent spawns of one uncached '
        f'image through novaext: {data["downloads"]} download(s).', '']


def spawn_cost(results):
    data = results.data['spawn']
    if data is None:
        return _missing('spawn')
    seconds = _spawn_seconds(data)
    sizes = sorted({key[1] for key in seconds})
    rows = [(f'``{path}``', f'``{reference}``', size,
             f'{seconds[(path, size, False)] / seconds[(reference, size, False)] - 1:+.1%}')  # noqa: E501
            for path, reference in data.get('hashing_cost', [])
            for size in sizes]
    return _list_table(['path', 'beside', 'base MiB', 'uncached spawn'],
                       rows, 'Cost of verifying bases')


# -- resize -------------------------------------------------------------

def _cases(data):
    cases = data.get('cases') or []
    for c in cases:
        c.setdefault('link', 'loopback')  # results from before links
    return cases


def _case(data, **wanted):
    for c in _cases(data):
        if all(c.get(k) == v for k, v in wanted.items()):
            return c
    return None


def resize_table(results):
    data = results.data['resize']
    if data is None:
        return _missing('resize')
    rows = [(c['link'], f'``{c["path"]}``', c['base_gib'], c['overlay_mib'],
             f'{c["seconds_min"]:.2f}', f'{c["seconds_median"]:.2f}',
             f'{c["bytes_sent"] / MiB:.1f}',
             _ratio(c['bytes_sent'], c['overlay_allocated_bytes']))
            for c in _cases(data)]
    return _list_table(['link', 'path', 'base GiB', 'overlay MiB', 'min s',
                        'median s', 'sent MiB',
                        'sent / overlay allocation'], rows,
                       'Resize disk move')


def resize_notes(results):
    data = results.data['resize']
    if data is None:
        return _missing('resize')
    cases = _cases(data)
    lines = []
    rebase = [c['rebase_seconds_median'] for c in cases
              if 'rebase_seconds_median' in c]
    if rebase:
        bases = sorted({c['base_gib'] for c in cases
                        if 'rebase_seconds_median' in c})
        lines += [
            f'- The destination\'s ``qemu-img rebase -u`` took '
            f'{min(rebase) * 1000:.1f}-{max(rebase) * 1000:.1f} ms '
            f'(median of each case) for bases of '
            f'{", ".join(map(str, bases))} GiB: it rewrites a header, '
            f'whatever the base size.']
    tls = []
    for c in cases:
        if c['path'] != 'novaext-tls':
            continue
        plain = _case(data, path='novaext', link=c['link'],
                      base_gib=c['base_gib'], overlay_mib=c['overlay_mib'])
        if plain:
            tls.append((c, plain))
    if tls:
        factors = [c['seconds_median'] / p['seconds_median']
                   for c, p in tls]
        lines += [
            f'- The TLS transport (``rsync_transport = tls``) took '
            f'{min(factors):.1f}-{max(factors):.1f} times the plain '
            f'transport\'s time for the same push ('
            f'{", ".join(sorted({c["link"] for c, _ in tls}))}).']
    for link in dict.fromkeys(c['link'] for c in cases):
        ours = [c for c in cases if c['link'] == link and
                c['path'] == 'novaext']
        pairs = [(c, _case(data, path='nova34', link=link,
                           base_gib=c['base_gib'],
                           overlay_mib=c['overlay_mib'])) for c in ours]
        pairs = [(c, n) for c, n in pairs if n]
        if pairs:
            factors = [n['seconds_median'] / c['seconds_median']
                       for c, n in pairs]
            lines += [
                f'- On {link}, Nova 34\'s copy (rsync over ssh) took '
                f'{min(factors):.1f}-{max(factors):.1f} times novaext\'s '
                f'push of the same overlay.']
    return lines + ['']


def _downtime_row(data, **wanted):
    for r in data.get('downtime') or []:
        if all(r.get(k) == v for k, v in wanted.items()):
            return r
    return None


def downtime_table(results):
    data = results.data['resize']
    if data is None:
        return _missing('resize')
    rows = data.get('downtime') or []
    if not rows:
        return ['*Not run:* the results hold no downtime case.', '']

    def runs(r):
        if r.get('runs', 1) == 1:
            return '1'
        return (f'{r["runs"]} (' + ', '.join(
            f'{d:.2f}' for d in r['downtime_s_runs']) + ' s)')

    def opt(r, key, fmt):
        return fmt(r[key]) if key in r else '-'

    table = [(r['link'], f'``{r["path"]}``', r['overlay_mib'],
              r['guest_writes_mib'], f'{r["downtime_s"]:.2f}',
              f'{r["shutdown_s"]:.2f}', f'{r["transfer_in_downtime_s"]:.2f}',
              f'{r["dest_prep_s"]:.2f}', f'{r["bytes_sent"] / MiB:.1f}',
              opt(r, 'precopy_s', lambda v: f'{v:.2f}'),
              opt(r, 'precopy_bytes_sent', lambda v: f'{v / MiB:.1f}'),
              opt(r, 'catchup_bytes_sent', lambda v: f'{v / MiB:.1f}'),
              runs(r)) for r in rows]
    return _list_table(
        ['link', 'path', 'overlay MiB', 'guest writes MiB', 'downtime s',
         'shutdown s', 'transfer in downtime s', 'destination s',
         'sent in downtime MiB', 'pre-copy s', 'pre-copied MiB',
         'catch-up MiB', 'runs'], table, 'Downtime of a resize, end to end')


def downtime_notes(results):
    data = results.data['resize']
    if data is None:
        return _missing('resize')
    rows = data.get('downtime') or []
    if not rows:
        return []
    lines = []
    biggest = max(r['overlay_mib'] for r in rows)
    for link in dict.fromkeys(r['link'] for r in rows):
        for writes in sorted({r['guest_writes_mib'] for r in rows}):
            pre = _downtime_row(data, link=link, overlay_mib=biggest,
                                guest_writes_mib=writes,
                                path='novaext-precopy')
            nova = _downtime_row(data, link=link, overlay_mib=biggest,
                                 guest_writes_mib=writes, path='nova34')
            plain = _downtime_row(data, link=link, overlay_mib=biggest,
                                  guest_writes_mib=writes, path='novaext')
            if not (pre and nova):
                continue
            share = (pre['shutdown_s'] + pre['dest_prep_s']) / \
                pre['downtime_s']
            text = (f'- {biggest} MiB overlay on {link}, the guest writing '
                    f'{writes} MiB during the resize: downtime '
                    f'{_s(pre["downtime_s"])} with pre-copy')
            if plain:
                text += f', {_s(plain["downtime_s"])} without'
            text += (f', {_s(nova["downtime_s"])} with Nova 34 '
                     f'({nova["downtime_s"] / pre["downtime_s"]:.2f}x); '
                     f'{_mib(pre["bytes_sent"])} moved after power-off')
            if 'catchup_bytes_sent' in pre:
                text += (f', {_mib(pre["catchup_bytes_sent"])} while the '
                         f'guest shut down')
            text += (f'. The guest\'s own shutdown and the destination\'s '
                     f'finish_migration are {share:.0%} of the pre-copy\'s '
                     f'downtime.')
            lines.append(text)
    shutdown = [r['shutdown_s'] for r in rows]
    dest = [r['dest_prep_s'] for r in rows]
    lines.append(
        f'- Across all cases and drivers, the guest\'s shutdown (QEMU TCG) '
        f'took {min(shutdown):.2f}-{max(shutdown):.2f} s and the '
        f'destination\'s finish_migration {min(dest):.2f}-{max(dest):.2f} '
        f's.')
    return lines + ['']


def targets_table(results):
    data = results.data['resize']
    if data is None:
        return _missing('resize')
    targets = data.get('targets') or []
    if not targets:
        return ['*Not run:* the results hold no targets.', '']
    rows = [(t['target'], ', '.join(f'{k} {v}' for k, v in
                                    t['case'].items()),
             f'{t["value"]:.2f}', f'``{t["limit"]}``',
             'yes' if t['met'] else '**no**') for t in targets]
    return _list_table(['target', 'case', 'value', 'limit', 'met'], rows,
                       'Targets (issue 17)')


# -- snapshot, extend ---------------------------------------------------

def snapshot_table(results):
    data = results.data['snapshot']
    if data is None:
        return _missing('snapshot')
    rows = [(f'``{c["path"]}``', c['base_gib'], c['overlay_mib'],
             f'{c["seconds"]:.2f}', f'{c["bytes_uploaded"] / MiB:.1f}',
             _ratio(c['bytes_uploaded'], c['overlay_allocated_bytes']),
             f'{c.get("paused_seconds", 0):.2f}')
            for c in data['cases'] + data.get('cold_cases', [])]
    return _list_table(['path', 'base GiB', 'overlay MiB', 'seconds',
                        'uploaded MiB', 'uploaded / overlay allocation',
                        'guest not running s'], rows, 'Snapshots')


def extend_table(results):
    data = results.data['extend']
    if data is None:
        return _missing('extend')
    return _list_table(
        ['attach s', 'online extend s', 'detach s', 'size before bytes',
         'size after bytes'],
        [(f'{data["attach_s"]:.3f}', f'{data["extend_s"]:.3f}',
          f'{data["detach_s"]:.3f}', data['size_before'],
          data['size_after'])], 'Cloud disk (QEMU initiator, tgt on loopback)')


# -- the summary --------------------------------------------------------

def summary_table(results):
    rows = []
    spawn = results.data['spawn']
    if spawn is not None:
        seconds = _spawn_seconds(spawn)
        floor = {f['base_mib']: f['seconds'] for f in spawn['copy_floor']}
        size = max(floor)

        def both(path):
            if (path, size, False) not in seconds:
                return ''
            return (f'{_s(seconds[(path, size, False)])} / '
                    f'{_s(seconds[(path, size, True)])}')
        rows.append((f'spawn, {size // 1024} GiB base, not cached / cached',
                     both('novaext'), both('nova34'),
                     f'cp of the image {_s(floor[size])}'))
        costs = [(p, r) for p, r in spawn.get('hashing_cost', [])]
        if costs:
            path, reference = costs[0]
            sizes = sorted(s for (p, s, c) in seconds
                           if p == path and not c)
            rows.append((
                'verified bases: uncached spawn beside verify_bases off, ' +
                ' / '.join(f'{s // 1024} GiB' if s >= 1024 else f'{s} MiB'
                           for s in sizes),
                ' / '.join(
                    f'{seconds[(path, s, False)] / seconds[(reference, s, False)] - 1:+.1%}'  # noqa: E501
                    for s in sizes), '', ''))
        rows.append((f'{spawn["concurrent_spawns"]} concurrent spawns of '
                     f'one uncached image',
                     f'{spawn["downloads"]} download(s)', '', ''))
    resize = results.data['resize']
    if resize is not None:
        for link, base, overlay in (('loopback', 2, 200),
                                    ('loopback', 4, 200),
                                    ('1gbit', 2, 800)):
            found = {p: _case(resize, path=p, link=link, base_gib=base,
                              overlay_mib=overlay)
                     for p in ('novaext', 'nova34', 'flatten', 'floor',
                               'tcp_floor')}
            if not found['novaext']:
                continue
            other = []
            if found['flatten']:
                other.append(
                    f'flatten + copy '
                    f'{_s(found["flatten"]["seconds_median"])}, '
                    f'{_mib(found["flatten"]["bytes_sent"])}')
            if found['tcp_floor'] and link != 'loopback':
                other.append(
                    f'TCP floor {_s(found["tcp_floor"]["seconds_median"])}')
            if found['floor']:
                other.append(f'dd {_s(found["floor"]["seconds_median"])}')
            nova = found['nova34']
            rows.append((
                f'resize disk move, {link}, {base} GiB base, {overlay} MiB '
                f'written',
                f'{_s(found["novaext"]["seconds_median"])}, '
                f'{_mib(found["novaext"]["bytes_sent"])} sent',
                f'{_s(nova["seconds_median"])}, {_mib(nova["bytes_sent"])} '
                f'(rsync -z over ssh)' if nova else '',
                '; '.join(other)))
        rows_down = resize.get('downtime') or []
        if rows_down:
            biggest = max(r['overlay_mib'] for r in rows_down)
            for link in ('1gbit',):
                pre = _downtime_row(resize, link=link, overlay_mib=biggest,
                                    guest_writes_mib=0,
                                    path='novaext-precopy')
                plain = _downtime_row(resize, link=link,
                                      overlay_mib=biggest,
                                      guest_writes_mib=0, path='novaext')
                nova = _downtime_row(resize, link=link, overlay_mib=biggest,
                                     guest_writes_mib=0, path='nova34')
                if pre and nova:
                    rows.append((
                        f'resize downtime of a real guest, {biggest} MiB '
                        f'overlay, {link}',
                        f'{_s(pre["downtime_s"])} with pre-copy' +
                        (f', {_s(plain["downtime_s"])} without'
                         if plain else ''),
                        _s(nova['downtime_s']), ''))
    snapshot = results.data['snapshot']
    if snapshot is not None:
        def snap(path, base, overlay):
            for c in snapshot['cases']:
                if (c['path'], c['base_gib'], c['overlay_mib']) == \
                        (path, base, overlay):
                    return c
            return None
        for base, overlay in ((2, 200), (4, 50)):
            delta = snap('novaext-delta', base, overlay)
            full = snap('novaext-full', base, overlay)
            nova = snap('nova34', base, overlay)
            if not (delta and full):
                continue
            rows.append((
                f'snapshot, {base} GiB base, {overlay} MiB written '
                f'(delta / full)',
                f'{_s(delta["seconds"])}, {_mib(delta["bytes_uploaded"])} / '
                f'{_s(full["seconds"])}, {_mib(full["bytes_uploaded"])}',
                f'{_s(nova["seconds"])}, {_mib(nova["bytes_uploaded"])}'
                if nova else '', ''))
        ours = [c.get('paused_seconds', 0) for c in snapshot['cases']
                if c['path'].startswith('novaext')]
        theirs = [c.get('paused_seconds', 0) for c in snapshot['cases']
                  if c['path'] == 'nova34']
        if ours:
            rows.append(('guest not running during a live snapshot (most)',
                         _s(max(ours)), _s(max(theirs)) if theirs else '',
                         ''))
    extend = results.data['extend']
    if extend is not None:
        rows.append(('cloud disk attach / online extend / detach',
                     f'{extend["attach_s"]:.3f} / {extend["extend_s"]:.3f} '
                     f'/ {extend["detach_s"]:.3f} s', '', ''))
    if not rows:
        return ['*No results.*', '']
    return _list_table(['what (median)', 'novaext', 'Nova 34',
                        'other / floor'], rows,
                       widths='34 26 22 18')


def machine(results):
    found = results.machine()
    if found is None:
        return ['The machine the results were taken on is not recorded '
                '(``REPORT.md`` has no ``Machine:`` line).', '']
    return [f'Machine: {found}', '']


PLOTS = {
    'spawn': ('spawn.png',),
    'resize': ('resize-overlay.png', 'resize-base.png', 'resize-bytes.png',
               'resize-downtime-loopback.png', 'resize-downtime-1gbit.png',
               'resize-downtime-10gbit.png'),
    'snapshot': ('snapshot-bytes.png', 'snapshot-seconds.png'),
}

RENDER = {
    'machine': machine,
    'summary': summary_table,
    'spawn': spawn_table,
    'spawn-cost': spawn_cost,
    'resize': resize_table,
    'resize-notes': resize_notes,
    'downtime': downtime_table,
    'downtime-notes': downtime_notes,
    'targets': targets_table,
    'snapshot': snapshot_table,
    'extend': extend_table,
}


class _RstDirective(SphinxDirective):
    """Renders the RST lines of ``self.lines()``."""

    def lines(self):
        raise NotImplementedError

    def run(self):
        node = nodes.section()
        node.document = self.state.document
        source = f'<{self.name} {" ".join(self.arguments)}>'
        nested_parse_with_titles(
            self.state, StringList(self.lines(), source=source), node)
        return node.children


class BenchmarkDirective(_RstDirective):
    required_arguments = 1
    optional_arguments = 1

    def lines(self):
        directory = self.config.novaext_benchmark_results
        if not os.path.isabs(directory):
            directory = os.path.join(self.env.srcdir, directory)
        directory = os.path.normpath(directory)
        for name in RESULTS:
            self.env.note_dependency(os.path.join(directory,
                                                  f'{name}.json'))
        self.env.note_dependency(os.path.join(directory, 'REPORT.md'))
        what = self.arguments[0]
        results = Results(directory)
        if what == 'plots':
            return self._plots(results, self.arguments[1])
        if what not in RENDER:
            raise self.error(f'unknown benchmark table {what!r}; one of '
                             f'{", ".join(sorted(RENDER))}, plots')
        return RENDER[what](results)

    def _plots(self, results, section):
        here = os.path.dirname(self.env.doc2path(self.env.docname))
        lines = []
        for png in PLOTS.get(section, ()):
            path = results.path(png)
            if os.path.exists(path):
                lines += [f'.. image:: {os.path.relpath(path, here)}',
                          f'   :alt: {png[:-4]}', '']
        return lines


def _cell(value):
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, tuple):
        return ', then '.join(_cell(v) for v in value)
    return str(value)


def _rst_escape(text):
    return re.sub(r'([\\`*_|])', r'\\\1', text)


class DecisionTableDirective(_RstDirective):
    required_arguments = 1
    option_spec = {'header': directives.unchanged_required,
                   'where': directives.unchanged}

    def lines(self):
        module, name = self.arguments[0].rsplit('.', 1)
        table = getattr(importlib.import_module(module), name)
        header = [h.strip() for h in self.options['header'].split(',')]
        where = self.options.get('where')
        rows = []
        for key, value in table.items():
            key = tuple(key) if isinstance(key, tuple) else (key,)
            if where is not None:
                if getattr(key[0], 'name', None) != where:
                    continue
                key = key[1:]
            rows.append([_rst_escape(_cell(k)) for k in key] +
                        [_rst_escape(_cell(value))])
        if rows and len(rows[0]) != len(header):
            raise self.error(f'{len(header)} header columns for rows of '
                             f'{len(rows[0])}')
        return _list_table(header, rows, f'``{self.arguments[0]}``')


class PinnedNamesDirective(_RstDirective):

    def lines(self):
        from novaext import nova_internals
        rows = [(f'``{pin.owner.rsplit(".", 1)[-1]}``', f'``{pin.name}``',
                 '(attribute)' if pin.params is None else
                 '``(' + ', '.join(pin.params) + ')``', pin.use,
                 _rst_escape(pin.why))
                for pin in nova_internals.PINNED_NAMES]
        return _list_table(['class', 'name', 'parameters', 'use', 'why'],
                           rows, '``novaext.nova_internals.PINNED_NAMES``',
                           widths='18 22 24 8 28')


def setup(app):
    app.add_config_value(
        'novaext_benchmark_results',
        os.path.join('..', '..', 'benchmarks', 'results'), 'env')
    app.add_directive('benchmark', BenchmarkDirective)
    app.add_directive('decision-table', DecisionTableDirective)
    app.add_directive('pinned-names', PinnedNamesDirective)
    return {'version': '1', 'parallel_read_safe': True,
            'parallel_write_safe': True}
