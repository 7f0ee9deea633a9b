"""Real image builders for the test suite: Docker's classic builder and BuildKit (through
Debian's ``docker`` 20.10 client against the suite's dockerd) and Debian's ``buildah``.

* `base_root(cache_dir)` -> a `BaseRoot`: a tar of a small Debian root filesystem, made
  once by ``debootstrap --variant=minbase bookworm`` and cached (``LAYERLEAK_TEST_CACHE``,
  default ``~/.cache/layerleak-tests``). The root is then cut down to what a shell build
  step needs (dash, coreutils, libc, base-files, base-passwd with their dpkg status), so
  that Docker's vfs storage driver, which copies the whole root for every step, stays fast.
  When debootstrap or the mirror is unavailable it falls back to a minimal root made of
  the host's dash and coreutils binaries and the libraries ``ldd`` lists, and says so in
  ``reason``.
* `DockerCli` runs ``docker`` with ``DOCKER_HOST`` set (classic builder or BuildKit).
* `Buildah` runs ``buildah`` with ``--isolation chroot``, its own ``--root``/``--runroot``
  and the vfs storage driver: nothing touches the host's container storage.

Every command has a timeout and raises `BuildFailed` with its output when it fails.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ENV_CACHE = "LAYERLEAK_TEST_CACHE"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
DEBOOTSTRAP_TIMEOUT = 900.0
COMMAND_TIMEOUT = 300.0
# Packages kept from the minbase root: a shell, coreutils and what they load.
KEEP_PACKAGES = frozenset(
    {
        "base-files",
        "base-passwd",
        "dash",
        "coreutils",
        "libc6",
        "libselinux1",
        "libpcre2-8-0",
        "libacl1",
        "libattr1",
        "libgmp10",
        "libcap2",
        "gcc-12-base",
        "libgcc-s1",
    }
)
DROP_DIRS = (
    "var/cache/apt",
    "var/cache/debconf",
    "var/lib/apt/lists",
    "var/lib/dpkg/info",  # read first, to know which file belongs to which package
    "var/log",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/i18n",
    "usr/lib/x86_64-linux-gnu/gconv",
)
# Of coreutils, only what the test Dockerfiles' RUN steps use.
KEEP_COREUTILS = frozenset({"cat", "cp", "ls", "mkdir", "rm", "test", "true", "echo", "id"})
HOST_BINARIES = ("dash", "cat", "rm", "cp", "mkdir", "echo", "test", "chmod", "ls", "true")
ROOT_VERSION = 3  # bump when the cut changes: the cached tar is rebuilt
INSTALL_HINT = "run scripts/system-deps.sh as root (installs debootstrap, buildah, docker.io)"


class BuildFailed(RuntimeError):
    """A builder command failed; the message holds its output."""


class BuilderUnavailable(RuntimeError):
    """A builder cannot run here; the message says why (for a skip)."""


@dataclass(frozen=True)
class BaseRoot:
    tar: Path  # an uncompressed tar of the root filesystem
    origin: str  # "debootstrap" or "host binaries"
    reason: str = ""  # why not debootstrap, when it is not


def cache_dir() -> Path:
    explicit = os.environ.get(ENV_CACHE)
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "layerleak-tests"


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = COMMAND_TIMEOUT,
    stdin: bytes | None = None,
) -> str:
    """Run a command; its stdout, or BuildFailed with the tail of its output."""
    full_env = dict(os.environ)
    full_env["PATH"] = full_env.get("PATH", "") + ":" + SYSTEM_PATH
    if env:
        full_env.update(env)
    try:
        done = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            env=full_env,
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BuildFailed(f"{' '.join(argv[:4])}... timed out after {timeout:.0f}s") from exc
    except OSError as exc:
        raise BuildFailed(f"cannot run {argv[0]}: {exc}") from exc
    out = done.stdout.decode(errors="replace")
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace")
        tail = "\n".join((out + err).splitlines()[-40:])
        raise BuildFailed(f"{' '.join(argv[:6])} exited {done.returncode}:\n{tail}")
    return out


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise the base build across concurrent test sessions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def base_root(directory: Path | None = None) -> BaseRoot:
    """The cached base root (made on first use); see the module docstring."""
    directory = directory or cache_dir()
    tar = directory / f"minbase-{SUITE}-cut-{ROOT_VERSION}.tar"
    with _locked(directory / ".lock"):
        if tar.is_file():
            return BaseRoot(tar, "debootstrap")
        try:
            _debootstrap_tar(tar)
            return BaseRoot(tar, "debootstrap")
        except BuilderUnavailable as exc:
            reason = str(exc)
        fallback = directory / "host-minimal.tar"
        _host_root_tar(fallback)
        return BaseRoot(fallback, "host binaries", reason)


def _debootstrap_tar(dest: Path) -> None:
    if os.geteuid() != 0:
        raise BuilderUnavailable(f"debootstrap needs root (euid {os.geteuid()})")
    binary = shutil.which("debootstrap", path=os.environ.get("PATH", "") + ":" + SYSTEM_PATH)
    if binary is None:
        raise BuilderUnavailable(f"debootstrap not found; {INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="llb-", dir="/tmp") as tmp:
        root = Path(tmp) / "root"
        try:
            run(
                [binary, "--variant=minbase", SUITE, str(root), MIRROR],
                timeout=DEBOOTSTRAP_TIMEOUT,
            )
        except BuildFailed as exc:
            raise BuilderUnavailable(f"debootstrap from {MIRROR} failed: {exc}") from exc
        _cut_down(root)
        _tar_root(root, dest)


def _cut_down(root: Path) -> None:
    """Remove the files of every package not in KEEP_PACKAGES and the coreutils programs not
    in KEEP_COREUTILS, and docs, caches, logs (the vfs driver copies the root per step)."""
    info = root / "var/lib/dpkg/info"
    for listing in sorted(info.glob("*.list")):
        package = listing.stem.split(":", 1)[0]
        if package in KEEP_PACKAGES and package != "coreutils":
            continue
        for line in listing.read_text(errors="replace").splitlines():
            path = root / line.lstrip("/")
            if package == "coreutils" and ("/bin/" not in line or path.name in KEEP_COREUTILS):
                continue
            if path.is_symlink():
                if not path.is_dir():  # /bin -> usr/bin and friends stay
                    path.unlink()
            elif path.is_file():
                path.unlink()
    for name in DROP_DIRS:
        shutil.rmtree(root / name, ignore_errors=True)
    if not (root / "bin/sh").exists():
        raise BuilderUnavailable("the cut-down minbase root has no /bin/sh")


def _tar_root(root: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if rel.startswith(("proc/", "sys/", "dev/")):
                continue
            tar.add(path, arcname=rel, recursive=False)
    partial.replace(dest)


def _host_root_tar(dest: Path) -> None:
    """A minimal root from the host's own binaries and the libraries they load."""
    if dest.is_file():
        return
    with tempfile.TemporaryDirectory(prefix="llb-", dir="/tmp") as tmp:
        root = Path(tmp) / "root"
        for name in HOST_BINARIES:
            binary = shutil.which(name, path=SYSTEM_PATH)
            if binary is None:
                continue
            real = Path(binary).resolve()
            for path in [real, *_libraries(real)]:
                target = root / str(path).lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
            link = root / "usr/bin" / name
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(real)
        (root / "bin").symlink_to("usr/bin")
        (root / "usr/bin/sh").symlink_to("dash")
        for d in ("tmp", "etc", "root"):
            (root / d).mkdir(exist_ok=True)
        (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        _tar_root(root, dest)


def _libraries(binary: Path) -> list[Path]:
    out = run(["ldd", str(binary)])
    libs = []
    for line in out.splitlines():
        for word in line.split():
            if word.startswith("/") and Path(word).exists():
                libs.append(Path(word))
    return libs


def find_docker() -> str | None:
    """Debian's docker client (/usr/bin/docker, 20.10, BuildKit built in) before any other."""
    if os.access("/usr/bin/docker", os.X_OK):
        return "/usr/bin/docker"
    return shutil.which("docker", path=os.environ.get("PATH", "") + ":" + SYSTEM_PATH)


@dataclass
class DockerCli:
    docker_host: str
    binary: str = field(default_factory=lambda: find_docker() or "docker")
    config_dir: Path | None = None  # an empty client config: no credentials of the host

    def __call__(self, *args: str, buildkit: bool = False, timeout: float = COMMAND_TIMEOUT) -> str:
        env = {"DOCKER_HOST": self.docker_host, "DOCKER_BUILDKIT": "1" if buildkit else "0"}
        if self.config_dir is not None:
            env["DOCKER_CONFIG"] = str(self.config_dir)
        return run([self.binary, *args], env=env, timeout=timeout)

    def build(
        self,
        context: Path,
        tag: str,
        *,
        buildkit: bool,
        build_args: Mapping[str, str] | None = None,
        secrets: Mapping[str, Path] | None = None,
        dockerfile: str = "Dockerfile",
    ) -> str:
        """Build; the image id."""
        argv = ["build", "--network", "host", "-f", str(context / dockerfile), "-t", tag]
        for name, value in (build_args or {}).items():
            argv += ["--build-arg", f"{name}={value}"]
        for name, path in (secrets or {}).items():
            argv += ["--secret", f"id={name},src={path}"]
        if buildkit:
            argv += ["--progress", "plain"]
        self(*argv, str(context), buildkit=buildkit)
        return self("image", "inspect", "--format", "{{.Id}}", tag).strip()


@dataclass
class Buildah:
    """buildah with private storage (vfs) and chroot isolation."""

    base_dir: Path
    binary: str = "buildah"

    @classmethod
    def create(cls, base_dir: Path) -> Buildah:
        binary = shutil.which("buildah", path=os.environ.get("PATH", "") + ":" + SYSTEM_PATH)
        if binary is None:
            raise BuilderUnavailable(f"buildah not found; {INSTALL_HINT}")
        if os.geteuid() != 0:
            raise BuilderUnavailable(
                f"buildah with vfs storage here needs root (euid {os.geteuid()})"
            )
        base_dir.mkdir(parents=True, exist_ok=True)
        (base_dir / "auth.json").write_text("{}")  # no credentials of the host
        return cls(base_dir, binary)

    def remove_storage(self) -> None:
        """Delete every image and container, then the storage directory."""
        with contextlib.suppress(BuildFailed):
            self("rm", "--all", timeout=60)
        with contextlib.suppress(BuildFailed):
            self("rmi", "--all", "--force", timeout=120)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __call__(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> str:
        argv = [
            self.binary,
            "--root",
            str(self.base_dir / "root"),
            "--runroot",
            str(self.base_dir / "run"),
            "--storage-driver",
            "vfs",
            *args,
        ]
        env = {
            # no registries.conf of the host: every name in our Dockerfiles is fully qualified
            "CONTAINERS_REGISTRIES_CONF": str(self._registries_conf()),
            "REGISTRY_AUTH_FILE": str(self.base_dir / "auth.json"),
        }
        return run(argv, env=env, timeout=timeout)

    def _registries_conf(self) -> Path:
        path = self.base_dir / "registries.conf"
        if not path.exists():
            path.write_text('unqualified-search-registries = []\nshort-name-mode = "disabled"\n')
        return path

    def build(
        self,
        context: Path,
        tag: str,
        *,
        layers: bool,
        build_args: Mapping[str, str] | None = None,
        secrets: Mapping[str, Path] | None = None,
        dockerfile: str = "Dockerfile",
    ) -> None:
        argv = [
            "build",
            "--isolation",
            "chroot",
            "--network",
            "host",
            "--tls-verify=false",
            f"--layers={'true' if layers else 'false'}",
            "-f",
            str(context / dockerfile),
            "-t",
            tag,
        ]
        for name, value in (build_args or {}).items():
            argv += ["--build-arg", f"{name}={value}"]
        for name, path in (secrets or {}).items():
            argv += ["--secret", f"id={name},src={path}"]
        self(*argv, str(context))

    def push(self, tag: str, destination: str) -> None:
        """``oci:DIR``, ``docker-archive:PATH:REF``, ``docker://HOST/REPO:TAG``..."""
        self("push", "--tls-verify=false", "--quiet", tag, destination)
