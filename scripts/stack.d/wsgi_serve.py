#!/usr/bin/env python3
"""Serve one WSGI application on host:port for scripts/stack.

Used for Keystone and the Neutron API, which ship a WSGI application but no
stand-alone server.  The application is loaded first and the port is bound
afterwards, so a listening port means "application loaded".

Two multi-threaded servers are supported:
  cheroot  - HTTP/1.1 (keep-alive, chunked request bodies), a thread pool;
             used when the package is importable (it is installed in the
             stack's venvs).
  wsgiref  - the standard library server with one thread per connection
             (HTTP/1.0, one request per connection); a fallback.

One line per request is appended to the access log:

  ISO-8601 time (UTC), method, path?query, status, duration in ms,
  X-Openstack-Request-Id response header (or "-").

Request bodies and request headers are never logged (so neither
X-Auth-Token nor X-Subject-Token can reach a log).
"""

import argparse
import datetime
import importlib
import os
import signal
import sys
import threading
import time
import urllib.parse


def _parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--name', required=True, help='service name (for logs)')
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument('--app', help='module:attribute of a WSGI app')
    target.add_argument('--factory',
                        help='module:callable returning a WSGI app')
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, required=True)
    p.add_argument('--access-log', required=True)
    p.add_argument('--threads', type=int, default=16)
    p.add_argument('--server', choices=('auto', 'cheroot', 'wsgiref'),
                   default='auto')
    p.add_argument('--pid-file', help='only used to tag the command line')
    return p.parse_args(argv)


def _log(name, msg):
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec='milliseconds')
    sys.stderr.write('%s %s[%d] %s\n' % (now, name, os.getpid(), msg))
    sys.stderr.flush()


def _clean(text):
    """Keep a log line on one line whatever the client sent."""
    return ''.join(
        c if (' ' < c < '\x7f') else '%%%02X' % (ord(c) & 0xff)
        for c in text)


class AccessLog:
    def __init__(self, path):
        self._lock = threading.Lock()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._f = os.fdopen(fd, 'a', buffering=1, encoding='utf-8')

    def write(self, method, target, status, duration_ms, request_id):
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec='milliseconds')
        line = '%s %s %s %s %.1fms %s\n' % (
            now, _clean(method), _clean(target), status, duration_ms,
            _clean(request_id) if request_id else '-')
        with self._lock:
            self._f.write(line)


def _request_target(environ):
    uri = environ.get('REQUEST_URI')
    if uri:
        return uri
    path = (environ.get('SCRIPT_NAME', '') + environ.get('PATH_INFO', ''))
    path = urllib.parse.quote(path.encode('latin-1', 'replace'),
                              safe="/:@!$&'()*+,;=-._~")
    qs = environ.get('QUERY_STRING', '')
    return path + ('?' + qs if qs else '')


class _LoggedBody:
    """Wraps a response iterable; logs when the server closes it."""

    def __init__(self, result, done):
        self._result = result
        self._done = done

    def __iter__(self):
        return iter(self._result)

    def close(self):
        try:
            close = getattr(self._result, 'close', None)
            if close is not None:
                close()
        finally:
            self._done()


def with_access_log(app, log):
    def logged_app(environ, start_response):
        start = time.monotonic()
        info = {'status': '-', 'rid': None}
        method = environ.get('REQUEST_METHOD', '-')
        target = _request_target(environ)
        logged = []

        def done():
            if logged:
                return
            logged.append(True)
            log.write(method, target, info['status'],
                      (time.monotonic() - start) * 1000.0, info['rid'])

        def logging_start_response(status, headers, exc_info=None):
            info['status'] = status.split(' ', 1)[0]
            for key, value in headers:
                if key.lower() == 'x-openstack-request-id':
                    info['rid'] = value
            return start_response(status, headers, exc_info)

        try:
            result = app(environ, logging_start_response)
        except BaseException:
            if info['status'] == '-':
                info['status'] = '500'
            done()
            raise
        return _LoggedBody(result, done)

    return logged_app


def _load_app(args):
    spec = args.app or args.factory
    module_name, _, attr = spec.partition(':')
    if not attr:
        raise SystemExit('%s: expected module:name' % spec)
    module = importlib.import_module(module_name)
    obj = getattr(module, attr)
    app = obj() if args.factory else obj
    if app is None or not callable(app):
        raise SystemExit('%s did not give a WSGI application' % spec)
    return app


def _serve_cheroot(app, args):
    from cheroot import wsgi as cheroot_wsgi

    server = cheroot_wsgi.Server(
        (args.host, args.port), app, numthreads=args.threads,
        server_name=args.name, request_queue_size=64, timeout=60,
        shutdown_timeout=5)
    server.prepare()
    _log(args.name, 'listening on http://%s:%d (cheroot, %d threads)'
         % (args.host, args.port, args.threads))
    try:
        server.serve()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.stop()


def _serve_wsgiref(app, args):
    import socketserver
    from wsgiref import simple_server

    class Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
        daemon_threads = True
        request_queue_size = 64
        allow_reuse_address = True

    class Handler(simple_server.WSGIRequestHandler):
        def log_request(self, code='-', size='-'):
            pass  # the access log is written by with_access_log()

    server = simple_server.make_server(
        args.host, args.port, app, server_class=Server,
        handler_class=Handler)
    _log(args.name, 'listening on http://%s:%d (wsgiref, thread per '
         'connection)' % (args.host, args.port))
    try:
        server.serve_forever(poll_interval=0.5)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()


def main(argv=None):
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    # oslo.config parses sys.argv when the applications initialise: give
    # them nothing of ours to parse.
    sys.argv = [args.name]

    def on_term(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)

    log = AccessLog(args.access_log)
    _log(args.name, 'loading %s' % (args.app or args.factory))
    started = time.monotonic()
    app = with_access_log(_load_app(args), log)
    _log(args.name, 'application loaded in %.1fs'
         % (time.monotonic() - started))

    server = args.server
    if server == 'auto':
        try:
            import cheroot.wsgi  # noqa: F401
            server = 'cheroot'
        except ImportError:
            server = 'wsgiref'
    if server == 'cheroot':
        _serve_cheroot(app, args)
    else:
        _serve_wsgiref(app, args)
    _log(args.name, 'stopped')
    # Threads the applications started (non-daemon ones included) must not
    # keep the process alive once the server has stopped.
    sys.stderr.flush()
    os._exit(0)


if __name__ == '__main__':
    main()
