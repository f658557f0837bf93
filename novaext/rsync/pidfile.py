"""Which process a daemon's PID file names, if it still runs."""



def live_pid(pid_file, names):
    """The PID in ``pid_file`` when that process runs and its command
    name is one of ``names``; None otherwise.

    A PID file outlives its daemon: the PID may now be a zombie nobody
    has reaped yet (a daemon killed under a parent that does not wait),
    or a recycled PID of an unrelated process. Taking either for the
    daemon would leave nothing serving while a start reports it up.
    """
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip())
        with open(f'/proc/{pid}/stat') as f:
            stat = f.read()
    except (OSError, ValueError):
        return None
    comm = stat[stat.index('(') + 1:stat.rindex(')')]
    state = stat[stat.rindex(')') + 2:].split()[0]
    if state in ('Z', 'X') or comm not in names:
        return None
    return pid
