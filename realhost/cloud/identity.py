"""Keystone records of the cloud's services: the service project, a user
per service with the admin role there, the catalog. Idempotent; secrets
go through the API, never onto a command line."""

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from keystoneclient.v3 import client

KEYSTONE_URL = 'http://127.0.0.1:5000/v3'


def admin_client(admin_password):
    auth = v3.Password(auth_url=KEYSTONE_URL, username='admin',
                       password=admin_password, project_name='admin',
                       user_domain_id='default', project_domain_id='default')
    return client.Client(session=ks_session.Session(auth=auth))


def _one(manager, **filters):
    found = manager.list(**filters)
    return found[0] if found else None


def register(keystone, name, service_type, url, password):
    """Make user ``name`` (admin and service in project service), service
    ``service_type`` and its three endpoints at ``url``."""
    project = (_one(keystone.projects, name='service') or
               keystone.projects.create('service', 'default'))
    user = _one(keystone.users, name=name)
    if user is None:
        user = keystone.users.create(name, domain='default',
                                     password=password)
    else:
        keystone.users.update(user, password=password)
    # admin, and service: the role services' own tokens must carry for
    # another service to accept them as service tokens.
    for role_name in ('admin', 'service'):
        role = (_one(keystone.roles, name=role_name) or
                keystone.roles.create(role_name))
        keystone.roles.grant(role, user=user, project=project)
    service = (_one(keystone.services, type=service_type) or
               keystone.services.create(name, service_type))
    have = {e.interface for e in keystone.endpoints.list(service=service)}
    for interface in ('public', 'internal', 'admin'):
        if interface not in have:
            keystone.endpoints.create(service, url, interface=interface,
                                      region='RegionOne')
