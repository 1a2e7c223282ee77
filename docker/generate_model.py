"""Write the tiny GGUF model of every `launch:` cluster of a router config into a directory (a shared volume).

Each cluster gets `<dir>/<cluster name>.gguf`, a relative symlink to the content-addressed model file, so a
llama.cpp container can load it by a stable name. Models that already exist are reused.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def generate(config_path: Path, directory: Path) -> dict[str, Path]:
    """Generate (or reuse) each launch cluster's model; returns cluster name -> stable link."""
    os.environ["LLM_ROUTER_CACHE"] = str(directory)  # read by cached_model_path()
    from extproc.config.loader import load_config
    from extproc.local.stack import model_spec
    from extproc.local.tiny_model import ensure_model

    links: dict[str, Path] = {}
    for cluster in load_config(config_path).clusters:
        if cluster.launch is None:
            continue
        model = ensure_model(model_spec(cluster), progress=print)
        model.chmod(0o644)  # readable by the llama.cpp containers, whatever user they run as
        link = directory / f"{cluster.name}.gguf"
        tmp = directory / f".{link.name}.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(model.name)
        os.replace(tmp, link)
        links[cluster.name] = link
        print(f"{link} -> {model.name}", flush=True)
    return links


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="router YAML file")
    parser.add_argument("--dir", type=Path, required=True, help="where to write the models")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    if not generate(args.config, args.dir):
        print(f"{args.config}: no cluster has a launch: block, nothing to generate", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
