"""Regenerate the checked-in ``*_pb2.py`` modules from the ``.proto`` files beside them.

Run from anywhere (needs ``grpcio-tools``)::

    python src/bconnect/core/proto/_regenerate.py

protoc is invoked with ``src/`` as the include root, so the generated modules import
each other as ``bconnect.core.proto.<name>_pb2``. Afterwards the gencode's
``ValidateProtobufRuntimeVersion`` call is removed: recent protoc releases stamp their own
(newer) version into it, which would make the modules refuse to import on the older
protobuf runtimes that ``pyproject.toml`` allows (``protobuf>=5.27``). The remaining
gencode only uses the descriptor-pool/builder API that every runtime since 5.27 provides.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[2]
PROTOS = ("scope.proto", "target.proto", "proxy.proto")

_CHECK = re.compile(
    r"^from google\.protobuf import runtime_version as _runtime_version\n"
    r"|^_runtime_version\.ValidateProtobufRuntimeVersion\(\n(?:.*\n)*?\)\n",
    re.MULTILINE,
)
_NOTE = (
    "# Post-processed by bconnect/core/proto/_regenerate.py: runtime version check removed\n"
    "# so the module imports on every protobuf runtime >= 5.27.\n"
)


def _strip_version_check(text: str) -> str:
    """Remove the runtime-version guard from one generated module."""
    stripped, count = _CHECK.subn("", text)
    if count not in (0, 2):
        raise RuntimeError(f"unexpected gencode layout ({count} version-check fragments)")
    return stripped.replace(
        '"""Generated protocol buffer code."""\n',
        _NOTE + '"""Generated protocol buffer code."""\n',
        1,
    )


def main() -> int:
    """Run protoc on every .proto file and post-process the output."""
    import grpc_tools  # only needed for regeneration

    include = Path(grpc_tools.__file__).resolve().parent / "_proto"
    rel = [str((HERE / name).relative_to(SRC)) for name in PROTOS]
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{SRC}",
        f"-I{include}",
        f"--python_out={SRC}",
        *rel,
    ]
    subprocess.run(cmd, check=True)
    for name in PROTOS:
        out = HERE / name.replace(".proto", "_pb2.py")
        out.write_text(_strip_version_check(out.read_text()))
        print(f"wrote {out.relative_to(SRC)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
