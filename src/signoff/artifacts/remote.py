"""FsspecArtifactStore: the artifact store in object storage, ``<prefix>/<aa>/<sha256>``.

Any fsspec URL works (``s3://bucket/prefix`` through s3fs, ``gs://``, ``memory://`` in
tests). Files are hashed on this machine before anything is sent, and a digest the store
holds already is not sent again (digests known to this process are not even asked for).
No partial object is ever visible under a digest key: an S3/GCS/Azure upload appears whole
when it completes; other file systems get a temporary key that is moved in place. Fetched
files land under a temporary name, are hashed, and only then renamed: a changed object is
an error naming its digest, never a file in the working folder.

Credentials and endpoints come from the environment as the file system's own client
expects (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE`` ... for S3).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

from signoff.artifacts._tree import iter_files, manifest_bytes, read_manifest, safe_relative
from signoff.errors import IntegrityError, NotFoundError, SignoffError
from signoff.tracking.fingerprints import file_sha256

__all__ = ["FsspecArtifactStore", "ObjectStoreError"]

_T = TypeVar("_T")

# object stores whose PUT makes an object visible whole or not at all
_ATOMIC_PUT = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"}
# protocols whose first path component is a bucket that must exist
_BUCKETS = _ATOMIC_PUT
# the extra that installs each protocol's file system
_EXTRAS = {"s3": "s3", "s3a": "s3"}
_S3 = {"s3", "s3a"}  # s3fs: batch calls and create-only PUTs
_ASK_FIRST_BYTES = 1 << 20  # a file this large is looked up before it is sent
_WORKERS = 8  # concurrent transfers for file systems without a batch API


class ObjectStoreError(SignoffError, OSError):
    """The object store refused or failed an operation (bucket, credentials, network)."""


class FsspecArtifactStore:
    """Artifacts under one fsspec URL; ``storage_options`` go to the file system as is."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.protocol = url.split("://", 1)[0].lower()
        self._options = dict(storage_options or {})
        self._fs: Any = None
        self._root = ""
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (sent to another process or node): the URL and options, not the client."""
        return {"url": self.url, "options": self._options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["options"])  # type: ignore[misc]

    # ------------------------------------------------------------------ the file system
    @property
    def fs(self) -> Any:
        """The fsspec file system, opened (and its bucket checked) on first use."""
        with self._lock:
            if self._fs is None:
                self._fs, self._root = self._open()
            return self._fs

    def _open(self) -> tuple[Any, str]:
        try:
            fsspec_core = importlib.import_module("fsspec.core")
            # An instance of its own: fsspec's cache keys on the options, not on what the
            # client reads from the environment (AWS_ENDPOINT_URL, credentials), so a cached
            # one could talk to another endpoint than the one this store was opened for.
            fs, root = fsspec_core.url_to_fs(self.url, skip_instance_cache=True, **self._options)
        except ImportError as exc:
            extra = _EXTRAS.get(self.protocol, "s3")
            raise ObjectStoreError(
                f"artifact store {self.url}: the {self.protocol}:// file system is not installed "
                f"({exc.name or exc}); pip install 'signoff[{extra}]'"
            ) from None
        except (ValueError, TypeError) as exc:
            raise ObjectStoreError(f"artifact store {self.url}: {exc}") from None
        root = str(root).rstrip("/")
        if self.protocol in _BUCKETS:
            self._check_bucket(fs, root.split("/", 1)[0])
        return fs, root

    def _prefix(self) -> str:
        """The key prefix (the URL without its protocol), once the file system is open."""
        if self._fs is None:
            _ = self.fs
        return self._root

    def _check_bucket(self, fs: Any, bucket: str) -> None:
        """A missing bucket is named at once; a refused look-up is not fatal (a policy may
        allow objects under a prefix and not the bucket itself): the first transfer tells."""
        try:
            fs.info(bucket)
        except PermissionError:
            return
        except FileNotFoundError:
            raise ObjectStoreError(
                f"artifact store {self.url}: bucket {bucket!r} does not exist "
                "(create it, or fix SIGNOFF_ARTIFACTS_URL)"
            ) from None
        except Exception as exc:  # the client's own errors (credentials, network) included
            raise ObjectStoreError(_reason(self.url, f"reaching bucket {bucket!r}", exc)) from None

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Turn the client's errors into one clear line (ours pass through unchanged)."""
        try:
            yield
        except SignoffError:
            raise
        except Exception as exc:
            raise ObjectStoreError(_reason(self.url, what, exc)) from None

    def _key(self, digest: str) -> str:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise NotFoundError(f"not an artifact digest: {digest!r}")
        return f"{self._prefix()}/{digest[:2]}/{digest}"

    def _batch(self) -> bool:
        """Whether the file system moves many files in one call (s3fs, gcsfs: async)."""
        asyn = importlib.import_module("fsspec.asyn")
        return isinstance(self.fs, asyn.AsyncFileSystem)

    def _each(self, work: Callable[[_T], object], items: Sequence[_T]) -> None:
        if len(items) <= 1:
            for item in items:
                work(item)
            return
        with ThreadPoolExecutor(max_workers=min(_WORKERS, len(items))) as pool:
            for _ in pool.map(work, items):
                pass

    # ------------------------------------------------------------------ writing
    def put(self, path: Path) -> str:
        return self._put_files({"": path})[""]

    def put_folder(self, folder: Path) -> dict[str, str]:
        return self._put_files(dict(iter_files(folder)))

    def put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if self.exists(digest):
            return digest
        key = self._key(digest)
        with self._guard(f"storing {digest[:12]}…"):
            if self.protocol in _ATOMIC_PUT:
                self.fs.pipe_file(key, data)
            else:
                partial = self._partial_key(digest)
                self.fs.pipe_file(partial, data)
                self.fs.mv(partial, key)
        self._remember(digest)
        return digest

    def put_tree(self, folder: Path) -> str:
        return self.put_bytes(manifest_bytes(self.put_folder(folder)))

    def _put_files(self, files: dict[str, Path]) -> dict[str, str]:
        """Hash every file here, send those the store lacks (concurrently), once per digest."""
        if files and self.protocol in _S3:
            return self._put_files_s3(files)
        digests: dict[str, str] = {}
        self._each(lambda rel: digests.__setitem__(rel, file_sha256(files[rel])), list(files))
        first: dict[str, Path] = {}
        for rel, digest in digests.items():
            first.setdefault(digest, files[rel])
        missing = self._missing(list(first))
        if missing:
            self._upload([(first[d], d) for d in missing])
        return {rel: digests[rel] for rel in files}

    def _put_files_s3(self, files: dict[str, Path]) -> dict[str, str]:
        """S3: each file is hashed and sent as soon as it is read, all files at once.

        A large file (1 MiB or more) is looked up first and not sent when the store holds
        it. A small one costs one request either way, so it is sent without asking: a PUT
        with ``If-None-Match: *`` never replaces what the store holds (a server that ignores
        the condition rewrites the same bytes under the same digest, which changes nothing).
        """
        fs = self.fs
        asyncio = importlib.import_module("asyncio")
        sending: dict[str, Any] = {}  # digest -> the task sending it (one per digest)

        async def send(path: Path, digest: str) -> None:
            key = self._key(digest)
            if path.stat().st_size >= _ASK_FIRST_BYTES and await fs._exists(key):
                return
            with contextlib.suppress(FileExistsError):  # held already: nothing replaced
                await fs._put_file(str(path), key, mode="create")

        async def one(rel: str, path: Path) -> tuple[str, str]:
            loop = asyncio.get_running_loop()
            digest: str = await loop.run_in_executor(None, file_sha256, path)
            if not self._is_known(digest):
                if digest not in sending:
                    sending[digest] = asyncio.ensure_future(send(path, digest))
                await sending[digest]
                self._remember(digest)
            return rel, digest

        done = self._gather([one(rel, path) for rel, path in files.items()], "uploading")
        return dict(done)

    def _is_known(self, digest: str) -> bool:
        with self._lock:
            return digest in self._known

    def _gather(self, coros: list[Any], what: str) -> list[Any]:
        """Run an async file system's calls concurrently (its batch size); raise the first
        failure (ours as they are, the client's as one clear line)."""
        if not coros:
            return []
        asyn = importlib.import_module("fsspec.asyn")
        with self._guard(f"{what} {len(coros)} file(s)"):
            results: list[Any] = asyn.sync(
                self.fs.loop, asyn._run_coros_in_chunks, coros, return_exceptions=True
            )
        for result in results:
            if isinstance(result, SignoffError):
                raise result
            if isinstance(result, BaseException):
                raise ObjectStoreError(_reason(self.url, f"{what} {len(coros)} file(s)", result))
        return results

    def _missing(self, digests: list[str]) -> list[str]:
        """The digests the store does not hold (asked for concurrently, known ones skipped)."""
        with self._lock:
            unknown = [d for d in digests if d not in self._known]
        held: set[str] = set()

        def ask(digest: str) -> None:
            if self.exists(digest):
                held.add(digest)

        self._each(ask, unknown)
        return [d for d in unknown if d not in held]

    def _upload(self, pairs: list[tuple[Path, str]]) -> None:
        keys = [self._key(d) for _, d in pairs]
        with self._guard(f"uploading {len(pairs)} file(s)"):
            if self.protocol in _ATOMIC_PUT and self._batch():
                self.fs.put([str(p) for p, _ in pairs], keys)
            else:

                def send(pair: tuple[Path, str]) -> None:
                    path, digest = pair
                    if self.protocol in _ATOMIC_PUT:
                        self.fs.put_file(str(path), self._key(digest))
                        return
                    partial = self._partial_key(digest)
                    self.fs.put_file(str(path), partial)
                    self.fs.mv(partial, self._key(digest))

                self._each(send, pairs)
        for _, digest in pairs:
            self._remember(digest)

    def _partial_key(self, digest: str) -> str:
        return f"{self._prefix()}/.partial/{digest}.{os.getpid()}.{uuid.uuid4().hex[:8]}"

    def _remember(self, digest: str) -> None:
        with self._lock:
            self._known.add(digest)

    # ------------------------------------------------------------------ reading
    def uri(self, digest: str) -> str:
        return str(self.fs.unstrip_protocol(self._key(digest)))

    def exists(self, digest: str) -> bool:
        with self._lock:
            if digest in self._known:
                return True
        key = self._key(digest)
        with self._guard(f"looking up {digest[:12]}…"):
            found = bool(self.fs.exists(key))
        if found:
            self._remember(digest)
        return found

    def open(self, digest: str) -> BinaryIO:
        key = self._key(digest)
        with self._guard(f"opening {digest[:12]}…"):
            try:
                return cast(BinaryIO, self.fs.open(key, "rb"))
            except FileNotFoundError:
                raise NotFoundError(f"no artifact {digest[:12]}… in {self.url}") from None

    def fetch(self, digest: str, folder: Path, name: str | None = None) -> Path:
        """Download to a temporary name, check the digest, rename; a changed object raises."""
        target = folder / (name or digest)
        self._download([(digest, target)])
        return target

    def fetch_tree(self, digest: str, folder: Path) -> Path:
        files = read_manifest(self._read_checked(digest))
        wanted: list[tuple[str, Path]] = []
        for rel, file_digest in files.items():
            target = folder / safe_relative(rel)
            if not (target.is_file() and file_sha256(target) == file_digest):
                wanted.append((file_digest, target))
        self._download(wanted)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _read_checked(self, digest: str) -> bytes:
        with self.open(digest) as source, self._guard(f"reading {digest[:12]}…"):
            data = source.read()
        if hashlib.sha256(data).hexdigest() != digest:
            raise IntegrityError(f"artifact {digest} changed in the store: digest mismatch")
        return data

    def _download(self, wanted: list[tuple[str, Path]]) -> None:
        """Fetch each digest once to a temporary name, check it, then rename it in place."""
        if not wanted:
            return
        tag = f"{os.getpid()}.{uuid.uuid4().hex[:8]}"
        first: dict[str, Path] = {}
        for digest, target in wanted:
            first.setdefault(digest, target)
        partials = {d: t.with_name(f".{t.name}.{tag}.partial") for d, t in first.items()}
        for folder in {target.parent for _, target in wanted}:
            folder.mkdir(parents=True, exist_ok=True)
        try:
            self._get(list(partials.items()))
            for digest, target in wanted:  # the same content under another name: a local copy
                if target != first[digest]:
                    copy = target.with_name(f".{target.name}.{tag}.copy")
                    shutil.copyfile(partials[digest], copy)
                    os.replace(copy, target)
            for digest, target in first.items():
                os.replace(partials[digest], target)
        finally:
            for partial in partials.values():
                partial.unlink(missing_ok=True)

    def _get(self, pairs: list[tuple[str, Path]]) -> None:
        """Download each (digest, temporary path) and check it; each file is hashed as soon
        as it has arrived, while the others are still coming."""
        if self._batch():
            fs, url = self.fs, self.url
            asyncio = importlib.import_module("asyncio")

            async def one(key: str, digest: str, partial: Path) -> None:
                try:
                    await fs._get_file(key, str(partial))
                except FileNotFoundError:
                    raise NotFoundError(f"no artifact {digest[:12]}… in {url}") from None
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, _check_digest, (digest, partial))

            self._gather([one(self._key(d), d, p) for d, p in pairs], "downloading")
            return

        def get(pair: tuple[str, Path]) -> None:
            digest, partial = pair
            with self._guard(f"downloading {digest[:12]}…"):
                try:
                    self.fs.get_file(self._key(digest), str(partial))
                except FileNotFoundError:
                    raise NotFoundError(f"no artifact {digest[:12]}… in {self.url}") from None
            _check_digest(pair)

        self._each(get, pairs)


def _check_digest(item: tuple[str, Path]) -> None:
    digest, path = item
    if file_sha256(path) != digest:
        raise IntegrityError(f"artifact {digest} changed in the store: digest mismatch")


def _reason(url: str, what: str, exc: BaseException) -> str:
    """One line for a failure of the store's client: what we did, and what it said."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, PermissionError):
        return f"artifact store {url}: access refused while {what} (check the credentials): {text}"
    if isinstance(exc, FileNotFoundError):
        return f"artifact store {url}: not found while {what}: {text}"
    return f"artifact store {url}: {what} failed: {type(exc).__name__}: {text}"
