"""Functional tier: real Nova services (API, conductor, scheduler,
placement, compute) in one process, compute on Nova's fake libvirt.

Needs the packages openstack-placement, oslotest, testtools and
wsgi-intercept (the ``test`` extra).
"""
