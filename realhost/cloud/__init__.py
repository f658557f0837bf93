"""A real OpenStack cloud on this machine, for the cloud tier and the demo.

``python -m realhost.cloud up|down|status`` (through ``scripts/cloud``).
Every daemon is started by this package and recorded by PID in
``<state>/pids/<name>.pid``; ``down`` stops exactly those PIDs. Config
files are rendered from ``realhost/cloud/templates`` into ``<state>/etc``;
generated secrets live in ``<state>/secrets.json`` (mode 0600) and never
on a command line.

Services and where they run: README.md, "Your own two-host cloud";
``access`` is how tests and the demo reach the running cloud.
"""
