"""`llm-router hash-key`: the stored form of a client key, for `auth.keys[].keyHash`."""

from __future__ import annotations

import argparse
import sys

from extproc.auth.config import hash_key


def add_hash_key_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = "Print the sha256 form of a client key read from standard input (for auth.keys[].keyHash)."
    sub = commands.add_parser("hash-key", help=text, description=text)
    sub.set_defaults(run=_hash_key)


def _hash_key(_: argparse.Namespace) -> int:
    key = sys.stdin.read().strip()
    if not key:
        print("hash-key: no key on standard input", file=sys.stderr)
        return 2
    print(hash_key(key))
    return 0
