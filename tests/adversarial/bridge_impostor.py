"""A server impostor for the adversarial bridge cases: it answers requests with scripted frames.

    python tests/adversarial/bridge_impostor.py SCRIPT [ignored server arguments]

SCRIPT is a JSON file holding a list of replies as hex strings; the impostor reads one request
frame from its standard input per reply and writes that reply's bytes, then waits for its
input to end. The replies are well framed (built with `encode_frame`, or by hand) but may be
malformed messages, which is what the client must refuse.
"""

import json
import sys

from checked_rl.runtime.bridge.protocol import PREFIX, decode_prefix


def main() -> None:
    replies = [bytes.fromhex(reply) for reply in json.loads(open(sys.argv[1]).read())]
    channel_in, channel_out = sys.stdin.buffer, sys.stdout.buffer
    for reply in replies:
        prefix = channel_in.read(PREFIX.size)
        if len(prefix) < PREFIX.size:
            return
        channel_in.read(decode_prefix(prefix))
        channel_out.write(reply)
        channel_out.flush()
    channel_in.read()


if __name__ == "__main__":
    main()
