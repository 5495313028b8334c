"""`reasonembed mteb` with every text our encoder encodes recorded, for tests/test_mteb.py.

Usage: python tests/mteb_worker.py RECORD.jsonl [reasonembed mteb options...]. Each line of RECORD.jsonl is one text
`Embedder.encode` received: {"is_query": bool, "text": str}, i.e. the text after the query template and instruction.
"""
import json
import sys

import reasonembed.models as models

record = open(sys.argv[1], "w", encoding="utf-8")
_real = models.Embedder.encode


def _recording_encode(self, texts, is_query=False, *args, **kwargs):
    for t in texts: record.write(json.dumps({"is_query": bool(is_query), "text": t}) + "\n")
    record.flush()
    return _real(self, texts, is_query, *args, **kwargs)


models.Embedder.encode = _recording_encode

if __name__ == "__main__":
    from reasonembed.cli import main
    sys.exit(main(["mteb", *sys.argv[2:]]))
