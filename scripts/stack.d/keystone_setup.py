#!/usr/bin/env python3
"""Create what the local stack needs in Keystone, through its REST API.

Idempotent: whatever exists already is kept (a user whose stored password
no longer works gets it reset).  Standard library only.

Input (environment):
  KS_URL             Keystone base URL, e.g. http://127.0.0.1:5000
  KS_REGION          region id (RegionOne)
  KS_NEUTRON_URL     Neutron endpoint URL, e.g. http://127.0.0.1:9696
  KS_ADMIN_PASSWORD_FILE, KS_NEUTRON_PASSWORD_FILE, KS_KURYR_PASSWORD_FILE
                     files holding the passwords (never printed)

Creates: project "service" (domain default); users "neutron" and "kuryr";
role "admin" for both on project "service"; role "admin" for "kuryr" on
domain "default"; service "network" with public/internal/admin endpoints.
"""

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

URL = os.environ['KS_URL'].rstrip('/')
REGION = os.environ.get('KS_REGION', 'RegionOne')
NEUTRON_URL = os.environ['KS_NEUTRON_URL'].rstrip('/')
DOMAIN = 'default'


def _secret(var):
    with open(os.environ[var], encoding='utf-8') as f:
        return f.read().strip()


class HTTPError(Exception):
    def __init__(self, method, path, status, body):
        super().__init__('%s %s -> %s: %s' % (method, path, status,
                                               body[:300]))
        self.status = status


def call(method, path, token=None, body=None, ok=(200, 201, 204)):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(URL + path, data=data, method=method)
    req.add_header('Accept', 'application/json')
    if data is not None:
        req.add_header('Content-Type', 'application/json')
    if token:
        req.add_header('X-Auth-Token', token)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            headers = resp.headers
            status = resp.status
    except urllib.error.HTTPError as e:
        raw = e.read()
        status = e.code
        headers = e.headers
        if status not in ok:
            # Keystone error bodies never echo passwords.
            raise HTTPError(method, path, status,
                            raw.decode('utf-8', 'replace'))
    if status not in ok:
        raise HTTPError(method, path, status, raw.decode('utf-8', 'replace'))
    return status, headers, (json.loads(raw) if raw else None)


def password_token(user, password, project=None, domain_scope=None):
    auth = {'identity': {'methods': ['password'], 'password': {'user': {
        'name': user, 'domain': {'id': DOMAIN}, 'password': password}}}}
    if project:
        auth['scope'] = {'project': {'name': project,
                                     'domain': {'id': DOMAIN}}}
    elif domain_scope:
        auth['scope'] = {'domain': {'id': domain_scope}}
    _, headers, _ = call('POST', '/v3/auth/tokens', body={'auth': auth})
    return headers['X-Subject-Token']


def can_authenticate(user, password):
    try:
        password_token(user, password)
        return True
    except HTTPError as e:
        if e.status == 401:
            return False
        raise


def q(**params):
    return '?' + urllib.parse.urlencode(params)


def find_one(token, collection, key, **params):
    _, _, body = call('GET', '/v3/%s%s' % (collection, q(**params)), token)
    items = body[key]
    return items[0] if items else None


def say(msg):
    print('  keystone: ' + msg)


def ensure_project(token, name):
    project = find_one(token, 'projects', 'projects', name=name,
                       domain_id=DOMAIN)
    if project:
        return project['id']
    _, _, body = call('POST', '/v3/projects', token, {'project': {
        'name': name, 'domain_id': DOMAIN, 'enabled': True,
        'description': 'kuryr local stack service project'}})
    say('created project %s' % name)
    return body['project']['id']


def ensure_user(token, name, password, project_id):
    user = find_one(token, 'users', 'users', name=name, domain_id=DOMAIN)
    if not user:
        _, _, body = call('POST', '/v3/users', token, {'user': {
            'name': name, 'domain_id': DOMAIN, 'enabled': True,
            'password': password, 'default_project_id': project_id}})
        say('created user %s' % name)
        return body['user']['id']
    if not can_authenticate(name, password):
        call('PATCH', '/v3/users/%s' % user['id'], token, {'user': {
            'password': password, 'enabled': True}})
        say('reset the password of user %s to the stored one' % name)
    return user['id']


def ensure_service(token, stype, name, description):
    service = find_one(token, 'services', 'services', type=stype)
    if service:
        return service['id']
    _, _, body = call('POST', '/v3/services', token, {'service': {
        'type': stype, 'name': name, 'description': description,
        'enabled': True}})
    say('created service %s (%s)' % (name, stype))
    return body['service']['id']


def ensure_endpoint(token, service_id, interface, url):
    endpoint = find_one(token, 'endpoints', 'endpoints',
                        service_id=service_id, interface=interface,
                        region_id=REGION)
    if endpoint:
        if endpoint['url'] != url or not endpoint.get('enabled', True):
            call('PATCH', '/v3/endpoints/%s' % endpoint['id'], token,
                 {'endpoint': {'url': url, 'enabled': True}})
            say('updated %s endpoint to %s' % (interface, url))
        return
    call('POST', '/v3/endpoints', token, {'endpoint': {
        'service_id': service_id, 'interface': interface, 'url': url,
        'region_id': REGION, 'enabled': True}})
    say('created %s endpoint %s' % (interface, url))


def main():
    admin_token = password_token('admin', _secret('KS_ADMIN_PASSWORD_FILE'),
                                 project='admin')
    role = find_one(admin_token, 'roles', 'roles', name='admin')
    if not role:
        sys.exit('keystone: role admin not found (bootstrap failed?)')
    role_id = role['id']

    project_id = ensure_project(admin_token, 'service')
    users = {}
    for name, var in (('neutron', 'KS_NEUTRON_PASSWORD_FILE'),
                      ('kuryr', 'KS_KURYR_PASSWORD_FILE')):
        users[name] = ensure_user(admin_token, name, _secret(var),
                                  project_id)
        # PUT of a role assignment is idempotent (204 either way).
        call('PUT', '/v3/projects/%s/users/%s/roles/%s'
             % (project_id, users[name], role_id), admin_token)
    call('PUT', '/v3/domains/%s/users/%s/roles/%s'
         % (DOMAIN, users['kuryr'], role_id), admin_token)

    service_id = ensure_service(admin_token, 'network', 'neutron',
                                'OpenStack Networking (local stack)')
    for interface in ('public', 'internal', 'admin'):
        ensure_endpoint(admin_token, service_id, interface, NEUTRON_URL)

    # Check what the clients will do: kuryr gets project- and domain-scoped
    # tokens.
    kuryr_password = _secret('KS_KURYR_PASSWORD_FILE')
    password_token('kuryr', kuryr_password, project='service')
    password_token('kuryr', kuryr_password, domain_scope=DOMAIN)
    say('project service, users neutron/kuryr, roles and the network '
        'endpoints are in place')


if __name__ == '__main__':
    try:
        main()
    except (HTTPError, urllib.error.URLError, OSError) as e:
        sys.exit('keystone setup failed: %s' % e)
