"""The real-host toolkit: novaext on this machine's real libvirtd, QEMU,
qemu-img, rsync daemons, stunnel and tgt.

Shared by the real test tier (tests/real), the demo (scripts/demo.py) and
the benchmarks (benchmarks/); not part of the shipped package.

- runtime: process setup for scripts outside pytest (native threads,
  starting the services when libvirtd does not answer);
- harness: one "compute host" (an instances_path and novaext's driver,
  or Nova's own, on the real libvirtd) with an in-process image service;
- rsyncd: rsync daemons started by novaext-rsyncd;
- tls: a test PKI and a TLS-fronted daemon;
- tgt: file-backed iSCSI LUNs on tgtd;
- snapshots: writes through a running QEMU, image comparison, guest
  state recording;
- images: base images full of data for the benchmarks;
- timing: the wall-clock timing of the benchmarks.
"""
