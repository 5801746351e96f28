#!/usr/bin/env python3
"""Create the stack's external network and router in Neutron (as devstack
lays them out), through the authenticated REST API.

Idempotent: each resource is found by name and created only if missing (a
router without an external gateway gets one).  Standard library only.

Input (environment):
  KS_URL                 Keystone base URL, e.g. http://127.0.0.1:5000
  NEUTRON_URL            Neutron base URL, e.g. http://127.0.0.1:9696
  KS_ADMIN_PASSWORD_FILE file holding the admin password (never printed)
  L3_PHYSNET             physical network of the flat external network (public)
  L3_NETWORK, L3_SUBNET, L3_CIDR, L3_GATEWAY, L3_POOL_START, L3_POOL_END
  L3_ROUTER              router name; L3_ROUTER_PROJECT its project's name

Creates, as the admin user of project admin: network L3_NETWORK
(router:external, flat on L3_PHYSNET, not shared) with subnet L3_SUBNET
(no DHCP), and router L3_ROUTER in project L3_ROUTER_PROJECT with its
external gateway on L3_NETWORK.

Prints one line: NETWORK_ID SUBNET_ID ROUTER_ID GATEWAY_PORT_ID GATEWAY_IP
(whether the L3 agent has wired the router is for the caller to see: a
port's status in the database may be the ACTIVE of an agent that is gone).
"""

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

KS_URL = os.environ['KS_URL'].rstrip('/')
NEUTRON_URL = os.environ['NEUTRON_URL'].rstrip('/')
ENV = os.environ


class HTTPError(Exception):
    def __init__(self, method, url, status, body):
        super().__init__('%s %s -> %s: %s' % (method, url, status,
                                               body[:400]))
        self.status = status


def call(method, url, token=None, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header('Accept', 'application/json')
    if data is not None:
        req.add_header('Content-Type', 'application/json')
    if token:
        req.add_header('X-Auth-Token', token)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return resp.headers, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raise HTTPError(method, url, e.code,
                        e.read().decode('utf-8', 'replace')) from None


def admin_token():
    with open(ENV['KS_ADMIN_PASSWORD_FILE'], encoding='utf-8') as f:
        password = f.read().strip()
    auth = {'identity': {'methods': ['password'], 'password': {'user': {
        'name': 'admin', 'domain': {'id': 'default'}, 'password': password}}},
        'scope': {'project': {'name': 'admin', 'domain': {'id': 'default'}}}}
    headers, _ = call('POST', KS_URL + '/v3/auth/tokens', body={'auth': auth})
    return headers['X-Subject-Token']


def project_id(token, name):
    _, body = call('GET', KS_URL + '/v3/projects?' + urllib.parse.urlencode(
        {'name': name, 'domain_id': 'default'}), token)
    if not body['projects']:
        sys.exit('l3 setup: no Keystone project %s' % name)
    return body['projects'][0]['id']


def neutron(method, path, token, body=None):
    return call(method, NEUTRON_URL + '/v2.0/' + path, token, body)[1]


def find(token, collection, **filters):
    found = neutron('GET', collection + '?' + urllib.parse.urlencode(filters),
                    token)[collection]
    if len(found) > 1:
        sys.exit('l3 setup: %d %s match %s; delete the extra ones'
                 % (len(found), collection, filters))
    return found[0] if found else None


def say(msg):
    print('  neutron: ' + msg, file=sys.stderr)


def ensure_network(token):
    name, physnet = ENV['L3_NETWORK'], ENV['L3_PHYSNET']
    net = find(token, 'networks', name=name)
    if net:
        if not net.get('router:external'):
            sys.exit('l3 setup: network %s (%s) exists but is not external; '
                     'delete it or make it router:external' % (name, net['id']))
        return net
    net = neutron('POST', 'networks', token, {'network': {
        'name': name, 'router:external': True, 'shared': False,
        'provider:network_type': 'flat',
        'provider:physical_network': physnet}})['network']
    say('created external network %s (flat, physnet %s)' % (name, physnet))
    return net


def ensure_subnet(token, net):
    name = ENV['L3_SUBNET']
    subnet = find(token, 'subnets', name=name, network_id=net['id'])
    if subnet:
        return subnet
    subnet = neutron('POST', 'subnets', token, {'subnet': {
        'name': name, 'network_id': net['id'], 'ip_version': 4,
        'cidr': ENV['L3_CIDR'], 'gateway_ip': ENV['L3_GATEWAY'],
        'allocation_pools': [{'start': ENV['L3_POOL_START'],
                              'end': ENV['L3_POOL_END']}],
        'enable_dhcp': False}})['subnet']
    say('created subnet %s %s' % (name, ENV['L3_CIDR']))
    return subnet


def ensure_router(token, net, project):
    name = ENV['L3_ROUTER']
    router = find(token, 'routers', name=name, project_id=project)
    gateway = {'network_id': net['id']}
    if not router:
        router = neutron('POST', 'routers', token, {'router': {
            'name': name, 'project_id': project,
            'external_gateway_info': gateway}})['router']
        say('created router %s (project %s), gateway on %s'
            % (name, ENV['L3_ROUTER_PROJECT'], net['name']))
    elif not (router.get('external_gateway_info') or {}).get('network_id'):
        router = neutron('PUT', 'routers/' + router['id'], token, {'router': {
            'external_gateway_info': gateway}})['router']
        say('set the external gateway of router %s on %s' % (name, net['name']))
    return router


def main():
    token = admin_token()
    project = project_id(token, ENV['L3_ROUTER_PROJECT'])
    net = ensure_network(token)
    subnet = ensure_subnet(token, net)
    router = ensure_router(token, net, project)
    gw_ip = '-'
    for ip in (router.get('external_gateway_info') or {}).get(
            'external_fixed_ips') or []:
        gw_ip = ip['ip_address']
    ports = neutron('GET', 'ports?' + urllib.parse.urlencode({
        'device_id': router['id'], 'device_owner': 'network:router_gateway',
        'fields': 'id'}), token)['ports']
    if not ports:
        sys.exit('l3 setup: router %s has no gateway port' % router['id'])
    print(net['id'], subnet['id'], router['id'], ports[0]['id'], gw_ip)


if __name__ == '__main__':
    try:
        main()
    except (HTTPError, urllib.error.URLError, OSError, KeyError) as e:
        sys.exit('l3 setup failed: %s' % e)
