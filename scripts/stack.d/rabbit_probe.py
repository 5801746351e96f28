#!/usr/bin/env python3
"""Readiness probes against the stack's RabbitMQ, for scripts/stack.

Run with the Neutron venv's python (it has kombu).  The broker URL comes from
the environment variable KURYR_STACK_RABBIT_URL (never the command line, as
it holds the password).

  rabbit_probe.py login            the broker accepts an AMQP login
  rabbit_probe.py consumers Q...   every queue Q exists and has a consumer

Exit status 0 when the condition holds, 1 when it does not (yet), with one
line on stderr saying why.
"""

import os
import sys

import kombu


def main(argv):
    if not argv or argv[0] not in ('login', 'consumers'):
        sys.stderr.write(__doc__)
        return 2
    url = os.environ.get('KURYR_STACK_RABBIT_URL')
    if not url:
        sys.stderr.write('KURYR_STACK_RABBIT_URL is not set\n')
        return 2
    # oslo.messaging's rabbit:// is kombu's (py)amqp:// transport.
    if url.startswith('rabbit://'):
        url = 'amqp://' + url[len('rabbit://'):]
    try:
        with kombu.Connection(url, connect_timeout=3) as conn:
            conn.connect()
            if argv[0] == 'login':
                return 0
            for queue in argv[1:]:
                # A passive declare fails (and closes the channel) when the
                # queue does not exist; otherwise it counts its consumers.
                channel = conn.channel()
                try:
                    _, _, consumers = channel.queue_declare(
                        queue=queue, passive=True)
                finally:
                    try:
                        channel.close()
                    except Exception:
                        pass
                if consumers < 1:
                    sys.stderr.write('queue %s has no consumer\n' % queue)
                    return 1
            return 0
    except Exception as exc:  # connection refused, login refused, no queue
        sys.stderr.write('%s: %s\n' % (type(exc).__name__, exc))
        return 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
