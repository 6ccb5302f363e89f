"""The project's Dockerfiles (one directory per image) and how they are built.

    turngym/sandboxes/images/sandbox/Dockerfile  ->  turngym/sandbox:latest   (FROM the base)
    turngym/sandboxes/images/<name>/Dockerfile   ->  turngym/<name>:latest     (FROM turngym/sandbox:latest)

A directory may list wheels and Debian packages to fetch on the host first (``fetch.py``).

Every Dockerfile starts with ``ARG BASE`` and ``FROM ${BASE}``, so ``turngym sandbox build --base
IMAGE`` rebuilds the family on another base. Where no image registry is reachable, the default base
``turngym/base:bookworm`` comes from debootstrap and ``docker import`` (scripts/setup/40-docker.sh).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turngym.core.errors import SandboxError

DEFAULT_BASE = "turngym/base:bookworm"
SANDBOX_IMAGE = "turngym/sandbox:latest"
IMAGES_DIR = Path(__file__).parent


@dataclass(frozen=True)
class ImageSpec:
    """A Dockerfile directory and the tag it builds; ``base`` None means the --base of the build."""

    tag: str
    context: Path
    base: str | None = None


def project_images() -> list[ImageSpec]:
    """The sandboxes' own images, in build order: the sandbox image, then the images built on it."""
    dirs = sorted((d for d in IMAGES_DIR.iterdir() if (d / "Dockerfile").is_file()), key=lambda d: d.name != "sandbox")
    return [ImageSpec(f"turngym/{d.name}:latest", d, base=None if d.name == "sandbox" else SANDBOX_IMAGE) for d in dirs]


def build_image(client: Any, spec: ImageSpec, *, base: str = DEFAULT_BASE) -> str:
    """Build one image (no network during the build); returns its id."""
    from turngym.sandboxes.images.fetch import cache_lock, prepare_context

    with cache_lock(spec.context.name):
        context = prepare_context(client, spec.context, spec.base or base)
        return docker_build(client, context, tag=spec.tag, base=spec.base or base, labels={"turngym.image": spec.tag})


def docker_build(
    client: Any,
    context: Path,
    *,
    tag: str,
    base: str,
    dockerfile: str = "Dockerfile",
    buildargs: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> str:
    """``docker build`` of ``context`` FROM ``base`` (the ``BASE`` build arg) with no network; the image id, or a
    ``SandboxError`` with the build log's tail (or naming the missing base image)."""
    import docker.errors

    try:
        image, _logs = client.images.build(
            path=str(context),
            dockerfile=dockerfile,
            tag=tag,
            buildargs={"BASE": base, **(buildargs or {})},
            network_mode="none",
            rm=True,
            forcerm=True,
            labels=labels or {},
        )
    except docker.errors.BuildError as e:
        tail = "".join(str(x.get("stream", x.get("error", ""))) for x in e.build_log)[-1500:]
        raise SandboxError(f"building {tag} from {context} failed: {e.msg}\n{tail}") from None
    except docker.errors.APIError as e:
        if "not found" in str(e) or "pull access denied" in str(e):
            raise SandboxError(
                f"building {tag}: the base image {base!r} is missing; run scripts/setup/40-docker.sh (it builds "
                "turngym/base:bookworm with debootstrap and the sandbox image on it) or pass --base"
            ) from None
        raise
    return image.id
