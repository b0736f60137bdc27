"""`python -m lobe.devtools.images [SERVICE …]` (`make images`): the local base, then the service
images on it, with progress; ends with each image's size."""

from __future__ import annotations

import argparse
import sys
import time

from lobe.devtools.images.base import ensure_base
from lobe.devtools.images.podman import image_inspect
from lobe.devtools.images.progress import BuildFailedError, say
from lobe.devtools.images.services import SERVICES, build_service


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m lobe.devtools.images", description=__doc__)
    parser.add_argument(
        "services", nargs="*", metavar="SERVICE", help=f"default: all of {', '.join(SERVICES)}"
    )
    services = parser.parse_args().services or list(SERVICES)
    if unknown := set(services) - set(SERVICES):
        parser.error(f"unknown service(s) {', '.join(sorted(unknown))}: one of {', '.join(SERVICES)}")
    started = time.monotonic()
    try:
        base = ensure_base()
        images = [build_service(service, base) for service in services]
    except BuildFailedError as exc:
        print(exc, file=sys.stderr)
        return 1
    say(f"built in {time.monotonic() - started:.0f} s")
    for image in images:
        record = image_inspect(image) or {}
        print(f"{image}\t{int(record.get('Size', 0)) / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
