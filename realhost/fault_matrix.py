"""The fault tier's cells on novaext and on stock Nova side by side, from
the two pytest JUnit reports scripts/fault-matrix writes, as an RST table
(included by doc/source/admin/recovery.rst) and printed.

    python -m realhost.fault_matrix NOVAEXT.xml STOCK.xml OUT.inc
"""

import datetime
import subprocess
import sys
import xml.etree.ElementTree as ET

REPO = __file__.rsplit('/realhost/', 1)[0]


def outcomes(report):
    """{cell: (outcome, detail)} of a JUnit report; outcome is passed,
    failed or skipped; detail the first line of why, if not passed."""
    found = {}
    for case in ET.parse(report).iter('testcase'):
        module = case.get('classname', '').rsplit('.', 1)[-1]
        cell = f'{module.removeprefix("test_")}: {case.get("name")}'
        outcome, detail = 'passed', ''
        for child in case:
            if child.tag in ('failure', 'error'):
                outcome = 'failed'
            elif child.tag == 'skipped':
                outcome = 'skipped'
            else:
                continue
            detail = (child.get('message') or '').strip().splitlines()
            detail = detail[0] if detail else ''
            break
        found[cell] = (outcome, detail)
    return found


def _cell_text(result):
    if result is None:
        return 'not run'
    outcome, detail = result
    if outcome == 'passed':
        return 'data intact, recovered (passed)'
    detail = detail.replace('|', '/').replace('`', "'")
    if len(detail) > 110:
        detail = detail[:107] + '...'
    # As an inline literal: a message's own text (``tmpab_``, ``*``) is
    # no reStructuredText markup.
    return f'{outcome}: ``{detail}``' if detail else outcome


def table(novaext, stock):
    rows = [('Cell', 'novaext', 'stock Nova 34')]
    for cell in sorted(set(novaext) | set(stock)):
        rows.append((cell, _cell_text(novaext.get(cell)),
                     _cell_text(stock.get(cell))))
    lines = ['.. list-table::', '   :header-rows: 1', '   :widths: 30 35 35',
             '']
    for row in rows:
        lines.append(f'   * - {row[0]}')
        lines.extend(f'     - {text}' for text in row[1:])
    return '\n'.join(lines) + '\n'


def main(argv=None):
    novaext_xml, stock_xml, out = (argv or sys.argv[1:])[:3]
    commit = subprocess.run(['git', '-C', REPO, 'rev-parse', '--short',
                             'HEAD'], capture_output=True, text=True,
                            check=True).stdout.strip()
    today = datetime.date.today().isoformat()
    text = (f'Latest run: commit ``{commit}``, {today}, '
            '``scripts/fault-matrix``.\n\n' +
            table(outcomes(novaext_xml), outcomes(stock_xml)))
    with open(out, 'w') as f:
        f.write(text)
    print(text)


if __name__ == '__main__':
    main()
